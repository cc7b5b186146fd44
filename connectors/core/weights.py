"""How much one engine's detection counts: a weight per engine times a weight for the kind of
name it gave. Names that only say "a heuristic or a model thinks so" (`W32.AIDetectNet.01`,
`malicious.moderate.ml.score`, `...susgen`, `HEUR:...`, `Generic...`) count for
`weak_name_weight` (0.25 by default), so a few of them on a small share of engines never make a
value malicious alone. A detection without a name counts fully."""

from __future__ import annotations

import functools
from typing import Dict, List, Optional, Tuple

from .config import PolicySettings
from .report import Report

Detection = Tuple[str, str, str, float]  # engine, category, result name, weight


class Weights:
    def __init__(self, policy: PolicySettings) -> None:
        self.engines: Dict[str, float] = {}
        for item in policy.engine_weights:
            name, _, weight = item.rpartition("=")
            self.engines[name.strip().lower()] = float(weight)
        self.weak = tuple(n.lower() for n in policy.weak_names if n)
        self.weak_weight = policy.weak_name_weight

    def is_weak(self, name: str) -> bool:
        low = name.lower()
        return any(w in low for w in self.weak)

    def of(self, engine: str, name: str) -> float:
        w = self.engines.get(engine.lower(), 1.0)
        return w * self.weak_weight if name and self.is_weak(name) else w


@functools.lru_cache(maxsize=32)
def weights_for(policy: PolicySettings) -> Weights:
    return Weights(policy)


_DEFAULT = PolicySettings()


def detections(report: Report, policy: Optional[PolicySettings] = None) -> List[Detection]:
    """The engines that flag the report, most trusted first (trusted and preferred engines,
    then by weight, malicious before suspicious, then by name)."""
    policy = policy or _DEFAULT
    w = weights_for(policy)
    first = {e.lower() for e in policy.trusted_engines + policy.preferred_engines}
    out = [
        (engine, cat, report.engine_results.get(engine, ""), 0.0)
        for engine, cat in report.engines.items()
    ]
    out = [(e, c, n, w.of(e, n)) for e, c, n, _ in out]
    out.sort(key=lambda d: (d[0].lower() not in first, -d[3], d[1] != "malicious", d[0].lower()))
    return out
