"""How much one engine's detection counts: a weight per engine (file reports only) times a
weight for the kind of name it gave. Names that only say "a heuristic or a model thinks so"
(`W32.AIDetectNet.01`, `malicious.moderate.ml.score`, `...susgen`, `HEUR:...`, `Generic...`)
count for `weak_name_weight` (0.25 by default), so a few of them on a small share of engines
never make a value malicious alone. A detection without a name counts fully."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

from .report import Report

if TYPE_CHECKING:  # config imports the defaults below; no import cycle at run time
    from .config import PolicySettings

Detection = Tuple[str, str, str, float]  # engine, category, result name, weight

# Detection names that say "a model or a heuristic thinks so" rather than naming a family
# (case-insensitive substrings; README "Verdicts" gives the evidence behind each default).
DEFAULT_WEAK_NAMES = (
    "aidetect", "ml.score", "!ml", "susgen", "generic", "heur", "sabsik", "gen:nn", "ai score",
    "static ai", "confidence", "unsafe", "real protect", "malicious.", "malware.ai", "detected",
)  # fmt: skip
# Engines whose lone detections on known-good software are the ones seen in real reports
# (tests/fixtures/vt: a Chocolatey shim and a setuptools launcher): "engine=weight".
DEFAULT_ENGINE_WEIGHTS = ("Bkav=0.5", "MaxSecure=0.5", "Trapmine=0.5", "Gridinsoft=0.5")
DEFAULT_WEAK_NAME_WEIGHT = 0.25
DEFAULT_TRUSTED_PUBLISHERS = (
    "Microsoft Corporation", "Microsoft Windows", "Google LLC", "Apple Inc.",
    "Mozilla Corporation", "Adobe Inc.", "Oracle America, Inc.", "Intel Corporation",
)  # fmt: skip


class Weights:
    def __init__(
        self,
        engine_weights: Tuple[str, ...] = DEFAULT_ENGINE_WEIGHTS,
        weak_names: Tuple[str, ...] = DEFAULT_WEAK_NAMES,
        weak_name_weight: float = DEFAULT_WEAK_NAME_WEIGHT,
        first: Tuple[str, ...] = (),  # trusted and preferred engines: listed first
    ) -> None:
        self.engines: Dict[str, float] = {}
        for item in engine_weights:
            name, _, weight = item.rpartition("=")
            self.engines[name.strip().lower()] = float(weight)
        self.weak = tuple(n.lower() for n in weak_names if n)
        self.weak_weight = weak_name_weight
        self.first = frozenset(e.lower() for e in first)

    def is_weak(self, name: str) -> bool:
        low = name.lower()
        return any(w in low for w in self.weak)

    def of(self, engine: str, name: str, file: bool = True) -> float:
        # Engine weights come from file detections; URL/domain/IP scanners of the same vendor
        # are other products and count fully.
        w = self.engines.get(engine.lower(), 1.0) if file else 1.0
        return w * self.weak_weight if name and self.is_weak(name) else w


@functools.lru_cache(maxsize=32)
def weights_for(policy: PolicySettings) -> Weights:
    return Weights(
        policy.engine_weights,
        policy.weak_names,
        policy.weak_name_weight,
        policy.trusted_engines + policy.preferred_engines,
    )


DEFAULT_WEIGHTS = Weights()


def detections(report: Report, policy: Optional[PolicySettings] = None) -> List[Detection]:
    """The engines that flag the report, most trusted first (trusted and preferred engines,
    then by weight, malicious before suspicious, then by name)."""
    w = weights_for(policy) if policy is not None else DEFAULT_WEIGHTS
    first = w.first
    out = [
        (engine, cat, report.engine_results.get(engine, ""), 0.0)
        for engine, cat in report.engines.items()
    ]
    file = report.kind == "file"
    out = [(e, c, n, w.of(e, n, file)) for e, c, n, _ in out]
    out.sort(key=lambda d: (d[0].lower() not in first, -d[3], d[1] != "malicious", d[0].lower()))
    return out
