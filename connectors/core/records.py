"""The JSON object of one enrichment: what `vtconnect lookup --format json` prints and what the
hub's `POST /v1/enrich` answers (both render it from here, so they cannot drift apart)."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

from .verdict import Enrichment


def rows(results: Sequence[Enrichment]) -> List[Dict[str, Any]]:
    out = []
    for r in results:
        d = r.to_dict()
        d["source"] = (
            "emulator"
            if r.report is not None and r.report.emulated
            else ("virustotal" if r.report is not None else "")
        )
        out.append(d)
    return out
