"""How much one engine's detection counts: a weight per engine (file reports only) times a
weight for the kind of name it gave. Names that only say "a heuristic or a model thinks so"
(`W32.AIDetectNet.01`, `malicious.moderate.ml.score`, `...susgen`, `HEUR:...`, `Generic...`)
count for `weak_name_weight` (0.25 by default), so a few of them on a small share of engines
never make a value malicious alone. A detection without a name counts fully."""

from __future__ import annotations

import functools
import re
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
        weak = [re.escape(n) for n in weak_names if n]
        self._weak = re.compile("|".join(weak), re.IGNORECASE).search if weak else None
        self._seen: Dict[str, bool] = {}  # detection names repeat across reports
        self._engine_seen: Dict[str, float] = {}
        self.weak_weight = weak_name_weight
        self.first = frozenset(e.lower() for e in first)

    def is_weak(self, name: str) -> bool:
        hit = self._seen.get(name)
        if hit is None:
            if len(self._seen) > 50_000:
                self._seen.clear()
            hit = self._seen[name] = bool(self._weak and self._weak(name))
        return hit

    def engine(self, name: str) -> float:
        w = self._engine_seen.get(name)
        if w is None:
            if len(self._engine_seen) > 10_000:
                self._engine_seen.clear()
            w = self._engine_seen[name] = self.engines.get(name.lower(), 1.0)
        return w

    def of(self, engine: str, name: str, file: bool = True) -> float:
        # Engine weights come from file detections; URL/domain/IP scanners of the same vendor
        # are other products and count fully.
        w = self.engine(engine) if file else 1.0
        return w * self.weak_weight if name and self.is_weak(name) else w


_BY_ID: Dict[int, Tuple[PolicySettings, Weights]] = {}


def weights_for(policy: PolicySettings) -> Weights:
    # By identity first: hashing the whole PolicySettings on every decision cost more than the
    # decision; equal policies still share one Weights through the lru_cache.
    hit = _BY_ID.get(id(policy))
    if hit is None or hit[0] is not policy:
        if len(_BY_ID) > 64:
            _BY_ID.clear()
        hit = _BY_ID[id(policy)] = (policy, _weights_for(policy))
    return hit[1]


@functools.lru_cache(maxsize=32)
def _weights_for(policy: PolicySettings) -> Weights:
    return Weights(
        policy.engine_weights,
        policy.weak_names,
        policy.weak_name_weight,
        policy.trusted_engines + policy.preferred_engines,
    )


DEFAULT_WEIGHTS = Weights()


def weighted(report: Report, w: Weights) -> Tuple[float, bool]:
    """(weighted malicious engines, every flagging engine gave a heuristic/ML/generic name).
    Engines counted in the stats but not listed in the results count fully. Inlined lookups:
    this runs for every report on the cold path."""
    file = report.kind == "file"
    results = report.engine_results
    seen, engine_seen, weak_weight = w._seen, w._engine_seen, w.weak_weight
    total, listed, all_weak = 0.0, 0, bool(report.engines)
    for engine, cat in report.engines.items():
        name = results.get(engine)
        if name:
            weak = seen.get(name)
            if weak is None:
                weak = w.is_weak(name)
        else:
            weak = False
        if not weak:
            all_weak = False
        if cat == "malicious":
            listed += 1
            if file:
                e = engine_seen.get(engine)
                if e is None:
                    e = w.engine(engine)
            else:
                e = 1.0
            total += e * weak_weight if weak else e
    return total + max(0, report.stats.get("malicious", 0) - listed), all_weak


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
