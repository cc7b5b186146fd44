"""Turns `vtconnect emulator` options into an EmulatorConfig, with clear errors."""

from __future__ import annotations

import json
from typing import Dict, Sequence

from .app import EmulatorConfig
from .faults import Faults


def build_config(tier: str, keys: Sequence[str], strict_keys: bool, faults: str) -> EmulatorConfig:
    table: Dict[str, str] = {}
    for item in keys:
        key, sep, key_tier = item.rpartition(":")
        if not sep or not key:
            raise ValueError(f"--key takes KEY:TIER, got {item!r}")
        table[key] = key_tier
    try:
        fault_config = Faults.from_mapping(json.loads(faults)) if faults else Faults()
    except json.JSONDecodeError as exc:
        raise ValueError(f"--faults is not valid JSON: {exc}") from None
    return EmulatorConfig(
        default_tier=tier, keys=table, accept_any_key=not strict_keys, faults=fault_config
    )
