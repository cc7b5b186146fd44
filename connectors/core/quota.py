"""One API budget per key, shared by every process on the host through a small ledger (SQLite),
or by every host through one PostgreSQL database (`[core] database`; connectors/core/ledger/).

A sliding 60-second window for the per-minute rate, a daily budget that resets at 00:00 UTC,
priorities (lower priorities may use only part of the day so that interactive lookups and alerts
still have budget late in the day) and optional daily shares per connector. Every request that
leaves the process takes a slot first (`take`), and the slot is stamped again when its answer
arrives (`sent`): the server counted it at some moment in between, so budgeting by the later
stamp never lets a window hold more requests than the server allows, however late the request
really left. A 429 from VirusTotal stops every process sharing the ledger until Retry-After has
passed (on every tier, "unlimited" too) and lowers the rate we trust, gently and for a while.
This module is the policy; the ledger only keeps the numbers and runs each decision as one
transaction for the key.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import math
import time
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from .clock import Clock
from .ledger import Book, Ledger, LedgerUnavailable, SQLiteLedger, State, open_ledger

log = logging.getLogger(__name__)

WINDOW = 60.0
DEFAULT_COOLDOWN = 60.0  # a 429 without (a readable) Retry-After
# 429 learning: halve the trusted rate, at most once per burst, never below a tenth of the
# configured rate; climb back a tenth of it per quiet period without a 429.
DECREASE_FACTOR = 0.5
DECREASE_GAP = 10.0  # 429s closer together than this are one burst: one decrease
FLOOR_FRACTION = 0.1
QUIET = 300.0
# A request that got no answer (timeout, dropped connection) may still reach the server a moment
# after we gave up on it.
NO_ANSWER_MARGIN = 1.0
SAY_WAIT_FROM = 1.0  # waits shorter than this are not worth a line on stderr
# A caller without a deadline still does not sit out a Retry-After longer than this (a daily
# quota answers "until midnight"): it gets Refused, as with a deadline.
LONGEST_COOLDOWN_WAIT = 300.0
COOLDOWN = "VirusTotal asked to wait (Retry-After)"


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


class Refused(Exception):
    """No slot: the day's budget (or the connector's share) is spent, the next slot comes
    after the caller's deadline, or the shared ledger cannot be reached. The message says
    which."""


def _day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def _next_midnight(ts: float) -> float:
    return (ts // 86400 + 1) * 86400


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class QuotaGovernor:
    def __init__(
        self,
        ledger: Union[str, Path, Ledger],
        api_key: str,
        per_minute: int,
        per_day: int,
        clock: Optional[Clock] = None,
        *,
        shares: Optional[Mapping[str, float]] = None,
        tier: str = "",
    ) -> None:
        # Only a digest names the key in the ledger; the key itself is never stored.
        self.key = hashlib.sha256(api_key.encode("utf-8", "replace")).hexdigest()[:16]
        self.per_minute = max(0, int(per_minute))
        self.per_day = max(0, int(per_day))
        self.clock = clock or Clock()
        self.unlimited = self.per_minute == 0 and self.per_day == 0
        self.shares: Dict[str, float] = dict(shares or {}) if self.per_day else {}
        self.tier = tier
        # A SQLite path or a postgresql:// URL (opened here: an unreachable database or a
        # schema newer than this code fails now, not at the first lookup), or a Ledger.
        self.ledger = ledger if isinstance(ledger, Ledger) else open_ledger(ledger)
        self._waiting: Dict[int, int] = {}  # priority -> callers of this process waiting
        self._said_until = 0.0  # the wait we last told the user about ends then

    def adopt(self, tier: str, per_minute: int, per_day: int) -> None:
        """Budget for the limits the API itself announced (a local emulator does)."""
        self.tier = tier
        self.per_minute = max(0, int(per_minute))
        self.per_day = max(0, int(per_day))
        self.unlimited = self.per_minute == 0 and self.per_day == 0
        if not self.per_day:
            self.shares = {}

    def close(self) -> None:
        self.ledger.close()

    # -- taking slots ----------------------------------------------------------------------
    async def acquire(
        self,
        priority: Priority = Priority.INTERACTIVE,
        deadline: Optional[float] = None,
        connector: str = "",
    ) -> bool:
        """Take one request slot; False where `take` refuses."""
        try:
            await self.take(priority, deadline, connector)
        except Refused:
            return False
        return True

    async def take(
        self,
        priority: Priority = Priority.INTERACTIVE,
        deadline: Optional[float] = None,
        connector: str = "",
    ) -> int:
        """Take one request slot and return its ticket for `sent`. Raises Refused when the day's
        budget for this priority or connector is spent or the next slot (or the end of a
        cooldown) comes after `deadline` (absolute, clock time); never sleeps past it."""
        said = False
        while True:
            now = self.clock.now()
            if any(n for p, n in self._waiting.items() if p < priority):
                wait: float = 0.05  # a more urgent caller here goes first
                why = "a more urgent caller goes first"
            else:
                try:
                    ticket, wait, why = self._try_take(priority, connector, now)
                except LedgerUnavailable as exc:  # no budget we can trust: no request
                    raise Refused(f"the quota ledger cannot be reached ({exc})") from None
                if ticket is not None:
                    return ticket
                if wait < 0:
                    raise Refused(why)
            if deadline is not None and now + wait > deadline:
                raise Refused(f"{why}: next slot in {math.ceil(wait)} s, after the deadline")
            if why is COOLDOWN and wait > LONGEST_COOLDOWN_WAIT:
                raise Refused(f"{why}: next slot in {math.ceil(wait)} s")
            if not said:
                said = self._say_wait(now, wait, why)
            self._waiting[priority] = self._waiting.get(priority, 0) + 1
            try:
                await self.clock.sleep(wait)
            finally:
                self._waiting[priority] -= 1

    def sent(self, ticket: int, answered: bool = True) -> None:
        """The request of `ticket` is over: stamp its slot now (the server counted it at some
        moment before), a little later when no answer came."""
        if not ticket:
            return
        at = self.clock.now() + (0.0 if answered else NO_ANSWER_MARGIN)
        try:
            self.ledger.stamp(self.key, ticket, at)
        except LedgerUnavailable as exc:  # the slot keeps its take stamp
            log.warning("cannot stamp a request's slot in the quota ledger: %s", exc)

    def _try_take(
        self, priority: Priority, connector: str, now: float
    ) -> Tuple[Optional[int], float, str]:
        """(ticket, 0, "") when a slot was taken (ticket 0: nothing recorded, unlimited);
        else (None, seconds to wait, why) or (None, -1, why) when waiting cannot help."""
        if self.unlimited:
            # No local limit, but a 429 seen by any process sharing the ledger holds everyone.
            cooldown = self.ledger.cooldown_until(self.key)
            if now < cooldown:
                return None, cooldown - now, COOLDOWN
            return 0, 0.0, ""

        day = _day(now)

        def txn(book: Book) -> Tuple[Optional[int], float, str]:
            # One read for the decision; calls older than the window go at the same time.
            look = book.look(day, now - WINDOW, shares=bool(self.shares), prune=True)
            cooldown, rate = self._state(look.state, now)
            if now < cooldown:
                return None, cooldown - now, COOLDOWN
            if self.per_day:
                used = look.day_used
                if used >= self.per_day * DAY_SHARE[priority]:
                    why = (
                        f"today's API budget for {priority.name.lower()} priority is spent "
                        f"({used} of {self.per_day} used; resets 00:00 UTC)"
                    )
                    return None, -1, why
                if self.shares and not self._share_allows(look.shares_used, connector):
                    why = (
                        f"connector {connector or '(unnamed)'} has used its daily share "
                        "and the unreserved part of today's budget is spent"
                    )
                    return None, -1, why
            if rate and look.count >= rate and look.oldest is not None:
                return None, max(0.001, look.oldest + WINDOW - now), f"{rate}/min in use"
            ticket = book.record(now, day, connector if self.shares else None)
            return ticket, 0.0, ""

        return self.ledger.write(self.key, txn)

    def _share_allows(self, used: Dict[str, int], connector: str) -> bool:
        """Shares are reservations: a listed connector may always use its own share; beyond
        it, and for connectors not listed, only the unreserved part of the day is left."""
        if used.get(connector, 0) < self.shares.get(connector, 0.0) * self.per_day:
            return True
        pool = (1.0 - sum(self.shares.values())) * self.per_day
        over = sum(max(0.0, n - self.shares.get(c, 0.0) * self.per_day) for c, n in used.items())
        return over + 1 <= pool + 1e-9

    def _say_wait(self, now: float, wait: float, why: str) -> bool:
        """One line on stderr per wait period (however many callers wait in it, and however
        often one of them wakes up to a slot that is not free yet), so a CLI user knows why
        nothing happens. True when the wait was said (or falls in one that was)."""
        if now < self._said_until:
            return True
        if wait < SAY_WAIT_FROM:
            return False
        self._said_until = now + wait
        tier = f"{'public' if self.tier == 'auto' else self.tier} tier " if self.tier else ""
        rate = f"{self.per_minute}/min" if self.per_minute else "no local limit"
        left = ""
        if self.per_day:
            used = self.ledger.read(self.key, lambda book: book.day_used(_day(now)))
            left = f", {max(0, self.per_day - used)} left today"
        log.warning(
            "rate-limited: %s%s, next slot in %d s%s (%s)", tier, rate, math.ceil(wait), left, why
        )
        return True

    # -- what a 429 teaches ----------------------------------------------------------------
    def _floor(self) -> int:
        return max(1, int(self.per_minute * FLOOR_FRACTION))

    def _effective(self, learned: int, learned_at: float, now: float) -> int:
        """The trusted rate: the learned one, plus a tenth of the configured rate per quiet
        period since the last decrease, up to the configured rate."""
        if not learned or not self.per_minute:
            return self.per_minute
        step = max(1, self.per_minute // 10)
        quiet_periods = max(0, int((now - learned_at) // QUIET))
        return min(self.per_minute, learned + step * quiet_periods)

    def _state(self, row: Optional[State], now: float) -> Tuple[float, int]:
        if row is None:
            return 0.0, self.per_minute
        cooldown, learned, learned_at = row
        return cooldown, self._effective(learned, learned_at, now)

    def learn_429(self, retry_after: Optional[float] = None, code: str = "") -> None:
        """VirusTotal said 429: nobody sharing the ledger (this host, or every host on one
        PostgreSQL database) sends before Retry-After, and the rate we
        trust is halved (once per burst, not below a tenth of the configured rate)."""
        now = self.clock.now()
        wait = retry_after if retry_after and retry_after > 0 else DEFAULT_COOLDOWN
        until = now + wait

        def txn(book: Book) -> Tuple[int, int, bool]:
            row = book.state()
            cooldown, learned, learned_at = row if row else (0.0, 0, 0.0)
            before = self._effective(learned, learned_at, now)
            after = before
            if self.per_minute and (not learned or now - learned_at >= DECREASE_GAP):
                after = max(self._floor(), int(before * DECREASE_FACTOR))
            if after != before or row is None:
                learned, learned_at = after, now
            book.put_state(until, learned if self.per_minute else 0, learned_at)
            return before, after, now < cooldown

        try:
            before, after, cooling = self.ledger.write(self.key, txn)
        except LedgerUnavailable as exc:  # the next take is refused the same way
            log.warning("VirusTotal answered 429; the quota ledger cannot be reached: %s", exc)
            return
        why = f"VirusTotal answered 429 {code}".rstrip()
        if after < before:
            log.warning(
                "%s: lowering the request rate for this key from %d/min to %d/min %s "
                "(waiting %d s first); it climbs back by %d/min every %d min without a 429",
                why,
                before,
                after,
                self._where(),
                math.ceil(wait),
                max(1, self.per_minute // 10),
                int(QUIET // 60),
            )
        else:  # said once per cooldown: a burst of 429s is one event
            say = log.info if cooling else log.warning
            where = self._where()
            say("%s: every process %s waits %d s (Retry-After)", why, where, math.ceil(wait))

    def _where(self) -> str:
        return "on this host" if isinstance(self.ledger, SQLiteLedger) else "on every host"

    # -- reporting -------------------------------------------------------------------------
    def status(self) -> Dict[str, Any]:
        now = self.clock.now()
        day = _day(now)

        look = self.ledger.read(self.key, lambda b: b.look(day, now - WINDOW, bool(self.shares)))
        cooldown, rate = self._state(look.state, now)
        used, last_minute, by_connector = look.day_used, look.count, look.shares_used
        cooldown_text = _iso(cooldown) if cooldown > now else ""
        if self.unlimited:
            return {
                "limited": False,
                "used_today": None,
                "per_day": 0,
                "per_minute": 0,
                "cooldown_until": cooldown_text,
            }
        out: Dict[str, Any] = {
            "limited": True,
            "used_today": used,
            "per_day": self.per_day,
            "left_today": max(0, self.per_day - used) if self.per_day else None,
            "used_last_minute": last_minute,
            "per_minute": rate,
            "configured_per_minute": self.per_minute,
            "cooldown_until": cooldown_text,
            "resets_at": _iso(_next_midnight(now)),
        }
        if self.shares:
            out["shares"] = {
                c: {"share": s, "reserved": int(s * self.per_day), "used": by_connector.get(c, 0)}
                for c, s in sorted(self.shares.items())
            }
            out["unreserved"] = int((1.0 - sum(self.shares.values())) * self.per_day)
        return out
