"""The emulator's configuration and its in-memory state (one per application, never global)."""

from __future__ import annotations

import collections
import hashlib
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

from aiohttp import web

from .faults import Faults
from .objects import Objects
from .quota import TIERS, TierQuota
from .synth import Synth

DIRECT_UPLOAD_LIMIT = 32 * 1024 * 1024  # POST /files
UPLOAD_URL_LIMIT = 650 * 1024 * 1024  # POST to a URL from /files/upload_url


@dataclass
class EmulatorConfig:
    default_tier: str = "unlimited"  # for keys not listed in `keys`
    keys: Dict[str, str] = field(default_factory=dict)  # key -> tier
    accept_any_key: bool = True  # False: unlisted keys get 401 WrongCredentialsError
    faults: Faults = field(default_factory=Faults)  # a dict is accepted too
    polls_until_complete: int = 1  # GET /analyses/{id} answers "queued" this many times first
    seed: int = 0  # 0: the default synthetic universe; others change which ids are bad/missing
    reference_time: Optional[float] = None  # dates count back from this day (default: start)
    tier_limits: Dict[str, Tuple[int, int]] = field(default_factory=dict)  # tier -> (min, day)
    direct_upload_limit: int = DIRECT_UPLOAD_LIMIT
    upload_url_limit: int = UPLOAD_URL_LIMIT

    def __post_init__(self) -> None:
        known = {**TIERS, **self.tier_limits}
        for tier in [self.default_tier, *self.keys.values()]:
            if tier not in known:
                raise ValueError(f"unknown tier {tier!r} (known: {', '.join(known)})")
        if isinstance(self.faults, dict):
            self.faults = Faults.from_mapping(self.faults)
        if self.polls_until_complete < 0:
            raise ValueError("polls_until_complete must be >= 0")


class Emulator:
    """Counters, quotas per key, upload tokens and the objects' aliases and overrides."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.objects = Objects(Synth(config.reference_time, config.seed))
        self.quotas: Dict[str, TierQuota] = {}
        self.uploads: Dict[str, bool] = {}  # upload_url tokens not used yet
        self.counters: Dict[str, Any] = {}
        self.reset_counters()

    def reset_counters(self) -> None:
        self.counters = {
            "requests": 0,
            "by_endpoint": collections.Counter(),
            "by_status": collections.Counter(),
            "by_key": collections.Counter(),
        }

    def count(self, endpoint: str, status: str, key: str) -> None:
        c = self.counters
        c["requests"] += 1
        c["by_endpoint"][endpoint] += 1
        c["by_status"][status] += 1
        c["by_key"][key_label(key)] += 1

    def counters_json(self) -> Dict[str, Any]:
        c = self.counters
        return {
            "requests": c["requests"],
            "by_endpoint": dict(c["by_endpoint"]),
            "by_status": dict(c["by_status"]),
            "by_key": dict(c["by_key"]),
        }

    def quota(self, key: str, tier: str) -> TierQuota:
        q = self.quotas.get(key)
        if q is None:
            q = self.quotas[key] = TierQuota.for_tier(tier, limits=self.config.tier_limits)
        return q

    def reset(self) -> None:
        self.reset_counters()
        self.quotas.clear()
        self.uploads.clear()
        self.objects.reset()


def key_label(key: str) -> str:
    """How counters name a key: a short hash, so a real key sent by mistake is not echoed."""
    return hashlib.sha256(key.encode()).hexdigest()[:8] if key else "-"


EMULATOR: web.AppKey[Emulator] = web.AppKey("emulator", Emulator)
