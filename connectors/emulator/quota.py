"""The quotas VirusTotal enforces per key tier; used by the emulator and by the quota benchmark,
so it only ever reads the injected clock."""

from __future__ import annotations

import collections
import time
from typing import Callable, Deque, Dict, Optional, Tuple

TIERS: Dict[str, Tuple[int, int]] = {  # per minute, per day; 0 = no limit
    "public": (4, 500),
    "premium": (1000, 1_000_000),
    "unlimited": (0, 0),
}


class TierQuota:
    """Sliding 60 s window and a daily budget that resets at 00:00 UTC."""

    def __init__(
        self, per_minute: int, per_day: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.per_minute = per_minute
        self.per_day = per_day
        self.clock = clock
        self._window: Deque[float] = collections.deque()
        self._day = -1
        self._used_today = 0

    @classmethod
    def for_tier(
        cls,
        tier: str,
        clock: Callable[[], float] = time.time,
        limits: Optional[Dict[str, Tuple[int, int]]] = None,
    ) -> TierQuota:
        """`limits` overrides TIERS, e.g. {"premium": (300, 50_000)} for a contract's numbers."""
        per_minute, per_day = {**TIERS, **(limits or {})}[tier]
        return cls(per_minute, per_day, clock)

    def take(self) -> Optional[str]:
        """None when the request may go on, else the error code VirusTotal answers with."""
        now = self.clock()
        day = int(now // 86400)
        if day != self._day:
            self._day, self._used_today = day, 0
        while self._window and self._window[0] <= now - 60:
            self._window.popleft()
        if self.per_day and self._used_today >= self.per_day:
            return "QuotaExceededError"
        if self.per_minute and len(self._window) >= self.per_minute:
            return "QuotaExceededError"
        self._window.append(now)
        self._used_today += 1
        return None

    def retry_after(self) -> int:
        now = self.clock()
        if self.per_day and self._used_today >= self.per_day:
            return int((self._day + 1) * 86400 - now) + 1
        if self._window:
            return max(1, int(self._window[0] + 60 - now) + 1)
        return 1
