"""stix2.parse in strict mode, allowing only the one custom property we set on purpose: the
marker on objects made from the emulator's answers."""

from __future__ import annotations

from typing import Any, Dict

import stix2

from connectors.core.stix import SOURCE_PROPERTY


def parse_strict(obj: Dict[str, Any]) -> Any:
    return stix2.parse(_unmarked(obj), allow_custom=False)


def _unmarked(obj: Dict[str, Any]) -> Dict[str, Any]:
    custom = {k for k in obj if k.startswith("x_")}
    assert custom <= {SOURCE_PROPERTY}, custom
    out = {k: v for k, v in obj.items() if k not in custom}
    if out.get("type") == "bundle":
        out["objects"] = [_unmarked(o) for o in out.get("objects", [])]
    return out
