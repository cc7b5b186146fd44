"""Fault injection: latency with jitter, error answers by code, hangs, dropped connections and
truncated JSON. Deterministic for a given seed; replaced at run time via /_emulator/faults."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Mapping

from .responses import STATUS

ALIASES = {"ServerError500": "ServerError"}  # a plain 500, as some proxies answer


@dataclass
class Faults:
    latency_ms: float = 0.0
    jitter_ms: float = 0.0  # uniform in [-jitter, +jitter] around latency_ms
    error_rates: Dict[str, float] = field(default_factory=dict)  # code -> probability
    timeout_rate: float = 0.0  # hang for timeout_s, then answer normally
    timeout_s: float = 30.0
    drop_rate: float = 0.0  # close the connection without an answer
    malformed_rate: float = 0.0  # 200 with a truncated JSON body
    seed: int = 0

    def __post_init__(self) -> None:
        rates = {ALIASES.get(code, code): float(rate) for code, rate in self.error_rates.items()}
        for code in rates:
            if code not in STATUS:
                raise ValueError(f"unknown error code {code!r} (known: {', '.join(STATUS)})")
        self.error_rates = rates
        total = sum(rates.values()) + self.timeout_rate + self.drop_rate + self.malformed_rate
        if any(r < 0 for r in rates.values()) or total > 1.0 + 1e-9:
            raise ValueError("fault rates must be >= 0 and add up to at most 1")
        if self.latency_ms < 0 or self.jitter_ms < 0 or self.timeout_s < 0:
            raise ValueError("latency_ms, jitter_ms and timeout_s must be >= 0")
        self._rng = random.Random(self.seed)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Faults:
        if not isinstance(data, Mapping):
            raise ValueError("faults must be a JSON object")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown fault setting {sorted(unknown)[0]!r}")
        if not isinstance(data.get("error_rates", {}), Mapping):
            raise ValueError("error_rates must map error codes to probabilities")
        try:
            return cls(**dict(data))
        except (TypeError, ValueError) as exc:
            raise ValueError(str(exc)) from None

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def delay(self) -> float:
        """Seconds to wait before answering."""
        if not self.latency_ms and not self.jitter_ms:
            return 0.0
        return max(0.0, self.latency_ms + self._rng.uniform(-1, 1) * self.jitter_ms) / 1000.0

    def pick(self) -> str:
        """ "" for a normal answer, else "drop", "timeout", "malformed" or an error code."""
        r = self._rng.random()
        for name, rate in (
            ("drop", self.drop_rate),
            ("timeout", self.timeout_rate),
            ("malformed", self.malformed_rate),
            *sorted(self.error_rates.items()),
        ):
            if r < rate:
                return name
            r -= rate
        return ""

    def active(self) -> bool:
        return bool(
            self.latency_ms
            or self.jitter_ms
            or any(self.error_rates.values())
            or self.timeout_rate
            or self.drop_rate
            or self.malformed_rate
        )
