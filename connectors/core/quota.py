"""One API budget per key, shared by every process on the host through a small SQLite ledger.

A sliding 60-second window for the per-minute rate, a daily budget that resets at 00:00 UTC,
and priorities: lower priorities may use only part of the day so that interactive lookups and
alerts still have budget late in the day. A 429 from VirusTotal stops every process on the host
until Retry-After has passed and lowers the rate it trusts for an hour.
"""

from __future__ import annotations

import enum
import hashlib
import sqlite3
import time
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

from .cache import open_db, write
from .clock import Clock

SCHEMA_VERSION = 1
WINDOW = 60.0
LEARNED_FOR = 3600.0  # a rate learned from a 429 is trusted this long after the last 429
DEFAULT_COOLDOWN = 60.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (key TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS calls_key_at ON calls(key, at);
CREATE TABLE IF NOT EXISTS days (key TEXT NOT NULL, day TEXT NOT NULL, used INTEGER NOT NULL,
    PRIMARY KEY (key, day));
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, cooldown_until REAL NOT NULL,
    learned_rate INTEGER NOT NULL, learned_at REAL NOT NULL);
"""


class Priority(enum.IntEnum):
    INTERACTIVE = 0  # an analyst waiting: CLI, Splunk search
    ALERT = 1  # webhook alerts
    BULK = 2  # feeds pulled for enrichment
    BACKGROUND = 3  # republishing, refreshes

    @classmethod
    def parse(cls, name: str) -> Priority:
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown priority {name!r}") from None


# Share of the daily budget each priority may use (documented in README).
DAY_SHARE = {
    Priority.INTERACTIVE: 1.0,
    Priority.ALERT: 0.95,
    Priority.BULK: 0.85,
    Priority.BACKGROUND: 0.60,
}


def _day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def _next_midnight(ts: float) -> float:
    return (ts // 86400 + 1) * 86400


class QuotaGovernor:
    def __init__(
        self,
        path: Union[str, Path],
        api_key: str,
        per_minute: int,
        per_day: int,
        clock: Optional[Clock] = None,
    ) -> None:
        # Only a digest names the key in the ledger; the key itself is never stored.
        self.key = hashlib.sha256(api_key.encode("utf-8", "replace")).hexdigest()[:16]
        self.per_minute = max(0, int(per_minute))
        self.per_day = max(0, int(per_day))
        self.clock = clock or Clock()
        self.unlimited = self.per_minute == 0 and self.per_day == 0
        self.path = Path(path)
        self._db: Optional[sqlite3.Connection] = None
        self._waiting: Dict[int, int] = {}  # priority -> callers of this process waiting

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = open_db(self.path, SCHEMA, SCHEMA_VERSION)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def acquire(
        self, priority: Priority = Priority.INTERACTIVE, deadline: Optional[float] = None
    ) -> bool:
        """Take one request slot. False when the day's budget for this priority is spent or the
        next slot comes after `deadline` (absolute, clock time); never sleeps past it."""
        if self.unlimited:
            return True
        while True:
            now = self.clock.now()
            if any(n for p, n in self._waiting.items() if p < priority):
                wait: Optional[float] = 0.05  # a more urgent caller here goes first
            else:
                granted, wait = self._try_take(priority, now)
                if granted:
                    return True
                if wait is None:
                    return False  # the day is spent for this priority
            if deadline is not None and now + wait > deadline:
                return False
            self._waiting[priority] = self._waiting.get(priority, 0) + 1
            try:
                await self.clock.sleep(wait)
            finally:
                self._waiting[priority] -= 1

    def _try_take(self, priority: Priority, now: float) -> Tuple[bool, Optional[float]]:
        """(True, 0) when a slot was taken; else (False, seconds to wait) or (False, None)."""

        def txn(db: sqlite3.Connection) -> Tuple[bool, Optional[float]]:
            cooldown, rate = self._state(db, now)
            if now < cooldown:
                return False, cooldown - now
            day = _day(now)
            if self.per_day:
                row = db.execute(
                    "SELECT used FROM days WHERE key = ? AND day = ?", (self.key, day)
                ).fetchone()
                if (row[0] if row else 0) >= self.per_day * DAY_SHARE[priority]:
                    return False, None
            if rate:
                db.execute("DELETE FROM calls WHERE key = ? AND at <= ?", (self.key, now - WINDOW))
                count, oldest = db.execute(
                    "SELECT COUNT(*), MIN(at) FROM calls WHERE key = ?", (self.key,)
                ).fetchone()
                if count >= rate:
                    return False, max(0.001, oldest + WINDOW - now)
            db.execute("INSERT INTO calls VALUES (?, ?)", (self.key, now))
            db.execute(
                "INSERT INTO days VALUES (?, ?, 1) ON CONFLICT(key, day) "
                "DO UPDATE SET used = used + 1",
                (self.key, day),
            )
            return True, 0.0

        return write(self.db, txn)

    def _state(self, db: sqlite3.Connection, now: float) -> Tuple[float, int]:
        row = db.execute(
            "SELECT cooldown_until, learned_rate, learned_at FROM state WHERE key = ?", (self.key,)
        ).fetchone()
        if row is None:
            return 0.0, self.per_minute
        cooldown, learned, learned_at = row
        if learned and now - learned_at < LEARNED_FOR:
            return cooldown, min(learned, self.per_minute) if self.per_minute else learned
        return cooldown, self.per_minute

    def learn_429(self, retry_after: Optional[float] = None) -> None:
        """VirusTotal said 429: nobody on this host sends before Retry-After, and the rate we
        trust drops below what was just seen in the window."""
        now = self.clock.now()
        until = now + (retry_after if retry_after and retry_after > 0 else DEFAULT_COOLDOWN)

        def txn(db: sqlite3.Connection) -> None:
            seen = db.execute(
                "SELECT COUNT(*) FROM calls WHERE key = ? AND at > ?", (self.key, now - WINDOW)
            ).fetchone()[0]
            learned = max(1, seen - 1)
            db.execute(
                "INSERT INTO state VALUES (?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                "cooldown_until = MAX(cooldown_until, excluded.cooldown_until), "
                "learned_rate = excluded.learned_rate, learned_at = excluded.learned_at",
                (self.key, until, learned, now),
            )

        write(self.db, txn)

    def status(self) -> Dict[str, Any]:
        now = self.clock.now()
        if self.unlimited:
            return {"limited": False, "used_today": None, "per_day": 0, "per_minute": 0}
        db = self.db
        cooldown, rate = self._state(db, now)
        row = db.execute(
            "SELECT used FROM days WHERE key = ? AND day = ?", (self.key, _day(now))
        ).fetchone()
        used = row[0] if row else 0
        last_minute = db.execute(
            "SELECT COUNT(*) FROM calls WHERE key = ? AND at > ?", (self.key, now - WINDOW)
        ).fetchone()[0]
        return {
            "limited": True,
            "used_today": used,
            "per_day": self.per_day,
            "left_today": max(0, self.per_day - used) if self.per_day else None,
            "used_last_minute": last_minute,
            "per_minute": rate,
            "configured_per_minute": self.per_minute,
            "cooldown_until": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(cooldown))
            if cooldown > now
            else "",
            "resets_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(_next_midnight(now))),
        }
