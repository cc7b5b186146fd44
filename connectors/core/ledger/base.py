"""The quota ledger's interface: what the governor (quota.py) reads and writes, one API key at a
time. The policy (windows, shares, priorities, what a 429 teaches) stays in the governor; a
ledger only keeps the numbers and runs the governor's decisions as transactions.

`write(key, fn)` runs fn(Book) in one transaction that holds the key's budget: no other take or
429 for the same key, in any process on any host sharing the ledger, runs in between, so a
decision made from what fn read is still true when it commits. `read(key, fn)` runs fn(Book)
without that hold (status, messages)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, Dict, Iterable, Iterator, NamedTuple, Optional, Tuple, TypeVar

T = TypeVar("T")
State = Tuple[float, int, float]  # cooldown_until, learned_rate (0: none learned), learned_at

# The ledger's rows, for `vtconnect db copy` and backups: table -> columns, in this order in
# `rows` and `load` (the same names and order in both backends; a call's ticket is not copied,
# it only matters while its request is in flight).
TABLES: Dict[str, Tuple[str, ...]] = {
    "calls": ("key", "at"),
    "days": ("key", "day", "used"),
    "state": ("key", "cooldown_until", "learned_rate", "learned_at"),
    "shares": ("key", "day", "connector", "used"),
}


class LedgerUnavailable(Exception):
    """The ledger cannot be read or written now (its database is unreachable): the governor
    refuses slots rather than guess the budget."""


class Look(NamedTuple):
    """What one take decides on, read at once (`Book.look`)."""

    state: Optional[State]
    day_used: int
    shares_used: Dict[str, int]  # {} unless asked for
    count: int  # calls stamped after `since`
    oldest: Optional[float]  # the oldest of them


class Book(ABC):
    """One key's numbers inside one transaction."""

    def look(self, day: str, since: float, shares: bool = False, prune: bool = False) -> Look:
        """State, today's count (and the connectors' when `shares`) and the window after
        `since` together; `prune` drops the calls at or before `since`. A backend where each
        read is a network round trip answers this in one."""
        count, oldest = self.window(since, prune)
        used = self.shares_used(day) if shares else {}
        return Look(self.state(), self.day_used(day), used, count, oldest)

    @abstractmethod
    def state(self) -> Optional[State]:
        """Cooldown and learned rate, None when no 429 was ever seen for the key."""

    @abstractmethod
    def put_state(self, cooldown_until: float, learned_rate: int, learned_at: float) -> None:
        """Store the learned rate; the cooldown only ever moves later (the longer one wins)."""

    @abstractmethod
    def day_used(self, day: str) -> int: ...

    @abstractmethod
    def shares_used(self, day: str) -> Dict[str, int]:
        """{connector: requests today} for the connectors counted by `record`."""

    @abstractmethod
    def window(self, since: float, prune: bool = False) -> Tuple[int, Optional[float]]:
        """(calls stamped after `since`, the oldest such stamp); `prune` drops older ones."""

    @abstractmethod
    def record(self, at: float, day: str, connector: Optional[str] = None) -> int:
        """One request slot: a call stamped `at`, one more today (and for `connector` when it
        is not None). Returns the call's ticket (> 0) for `Ledger.stamp`."""


class Ledger(ABC):
    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def write(self, key: str, fn: Callable[[Book], T]) -> T:
        """fn in one transaction holding `key`'s budget (see the module docstring)."""

    @abstractmethod
    def read(self, key: str, fn: Callable[[Book], T]) -> T: ...

    @abstractmethod
    def cooldown_until(self, key: str) -> float:
        """The end of the key's cooldown (0 when none): one cheap read, for every request of an
        unlimited tier."""

    @abstractmethod
    def stamp(self, key: str, ticket: int, at: float) -> None:
        """Move a call's stamp to `at` (when its answer came)."""

    # -- copying ---------------------------------------------------------------------------
    def tables(self) -> Dict[str, Tuple[str, ...]]:
        """Table name -> columns of everything this ledger keeps (see TABLES)."""
        return dict(TABLES)

    @abstractmethod
    def rows(self, table: str) -> Iterator[Tuple[Any, ...]]:
        """Every row of one of `tables()`, columns in that order."""

    @abstractmethod
    def load(self, table: str, rows: Iterable[Tuple[Any, ...]]) -> int:
        """Add rows (as `rows` gives them) in one transaction; rows whose key is there already
        are updated. Returns how many were given."""


def check_table(table: str) -> Tuple[str, ...]:
    try:
        return TABLES[table]
    except KeyError:
        raise ValueError(f"the quota ledger has no table {table!r}") from None
