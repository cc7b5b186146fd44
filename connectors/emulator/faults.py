"""Fault injection: latency, error codes, hangs, dropped connections, malformed JSON."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping

# Error codes VirusTotal answers with, and their HTTP status.
STATUS = {
    "TransientError": 503,
    "DeadlineExceededError": 504,
    "ServerError": 500,
    "QuotaExceededError": 429,
    "TooManyRequestsError": 429,
    "NotFoundError": 404,
    "WrongCredentialsError": 401,
    "AuthenticationRequiredError": 401,
    "ForbiddenError": 403,
    "UserNotActiveError": 403,
    "InvalidArgumentError": 400,
    "BadRequestError": 400,
}


@dataclass
class Faults:
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rates: Dict[str, float] = field(default_factory=dict)  # code -> probability
    timeout_rate: float = 0.0  # hang for timeout_s, then answer normally
    timeout_s: float = 30.0
    drop_rate: float = 0.0  # close the connection without an answer
    malformed_rate: float = 0.0  # 200 with a truncated JSON body
    seed: int = 0

    def __post_init__(self) -> None:
        for code in self.error_rates:
            if code not in STATUS:
                raise ValueError(f"unknown error code {code!r} (known: {', '.join(STATUS)})")
        self._rng = random.Random(self.seed)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Faults:
        if not isinstance(data, Mapping):
            raise ValueError("faults must be a JSON object")
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault setting {sorted(unknown)[0]!r}")
        try:
            return cls(**dict(data))
        except TypeError as exc:
            raise ValueError(str(exc)) from None

    def delay(self) -> float:
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
            or self.error_rates
            or self.timeout_rate
            or self.drop_rate
            or self.malformed_rate
        )
