"""The quota ledger in one SQLite file per host (the embedded default, <state_dir>/quota.db):
every process on the host shares it; BEGIN IMMEDIATE makes each take one transaction."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, Optional, Tuple, TypeVar, Union

from connectors.core.store.sqlite import open_db, write

from .base import Book, Ledger, State, check_table
from .mark import ChangeMark

T = TypeVar("T")
RECHECK = 1.0  # seconds a cooldown read under an unchanged mark is trusted (mark.py)
_monotonic = time.monotonic  # the tests move it, not the process's clock
SCHEMA_VERSION = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (key TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS calls_key_at ON calls(key, at);
CREATE TABLE IF NOT EXISTS days (key TEXT NOT NULL, day TEXT NOT NULL, used INTEGER NOT NULL,
    PRIMARY KEY (key, day));
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, cooldown_until REAL NOT NULL,
    learned_rate INTEGER NOT NULL, learned_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS shares (key TEXT NOT NULL, day TEXT NOT NULL, connector TEXT NOT NULL,
    used INTEGER NOT NULL, PRIMARY KEY (key, day, connector));
"""
# Rows added by `load`: keyed tables take the copied numbers.
LOAD = {
    "calls": "INSERT INTO calls (key, at) VALUES (?, ?)",
    "days": "INSERT INTO days VALUES (?, ?, ?) ON CONFLICT(key, day) DO UPDATE SET "
    "used = excluded.used",
    "state": "INSERT INTO state VALUES (?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
    "cooldown_until = excluded.cooldown_until, learned_rate = excluded.learned_rate, "
    "learned_at = excluded.learned_at",
    "shares": "INSERT INTO shares VALUES (?, ?, ?, ?) ON CONFLICT(key, day, connector) "
    "DO UPDATE SET used = excluded.used",
}


class SQLiteBook(Book):
    def __init__(self, db: sqlite3.Connection, key: str) -> None:
        self.db = db
        self.key = key
        self.changed_state = False

    def state(self) -> Optional[State]:
        row = self.db.execute(
            "SELECT cooldown_until, learned_rate, learned_at FROM state WHERE key = ?", (self.key,)
        ).fetchone()
        return (float(row[0]), int(row[1]), float(row[2])) if row else None

    def put_state(self, cooldown_until: float, learned_rate: int, learned_at: float) -> None:
        self.db.execute(
            "INSERT INTO state VALUES (?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
            "cooldown_until = MAX(cooldown_until, excluded.cooldown_until), "
            "learned_rate = excluded.learned_rate, learned_at = excluded.learned_at",
            (self.key, cooldown_until, learned_rate, learned_at),
        )
        self.changed_state = True

    def day_used(self, day: str) -> int:
        row = self.db.execute(
            "SELECT used FROM days WHERE key = ? AND day = ?", (self.key, day)
        ).fetchone()
        return int(row[0]) if row else 0

    def shares_used(self, day: str) -> Dict[str, int]:
        rows = self.db.execute(
            "SELECT connector, used FROM shares WHERE key = ? AND day = ?", (self.key, day)
        ).fetchall()
        return {c: int(n) for c, n in rows}

    def window(self, since: float, prune: bool = False) -> Tuple[int, Optional[float]]:
        if prune:
            self.db.execute("DELETE FROM calls WHERE key = ? AND at <= ?", (self.key, since))
        count, oldest = self.db.execute(
            "SELECT COUNT(*), MIN(at) FROM calls WHERE key = ? AND at > ?", (self.key, since)
        ).fetchone()
        return int(count), oldest

    def record(self, at: float, day: str, connector: Optional[str] = None) -> int:
        ticket = self.db.execute("INSERT INTO calls VALUES (?, ?)", (self.key, at)).lastrowid
        self.db.execute(
            "INSERT INTO days VALUES (?, ?, 1) ON CONFLICT(key, day) DO UPDATE SET used = used + 1",
            (self.key, day),
        )
        if connector is not None:
            self.db.execute(
                "INSERT INTO shares VALUES (?, ?, ?, 1) ON CONFLICT(key, day, connector) "
                "DO UPDATE SET used = used + 1",
                (self.key, day, connector),
            )
        return int(ticket or 0)


class SQLiteLedger(Ledger):
    def __init__(self, path: Union[str, Path]) -> None:
        self.path = Path(path)
        self._db: Optional[sqlite3.Connection] = None
        self._lock = threading.RLock()  # one connection; threads of a process take turns
        self._mark: Optional[ChangeMark] = None
        # key -> (cooldown end, the mark it was read under, when: time.monotonic())
        self._cooldowns: Dict[str, Tuple[float, bytes, float]] = {}

    @property
    def db(self) -> sqlite3.Connection:
        """Opened (and the file created) on first use."""
        if self._db is None:
            self._db = open_db(self.path, SCHEMA, SCHEMA_VERSION)
            self._mark = ChangeMark(f"{self.path}-state")
        return self._db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
            if self._mark is not None:
                self._mark.close()
                self._mark = None

    def write(self, key: str, fn: Callable[[Book], T]) -> T:
        with self._lock:
            book = SQLiteBook(self.db, key)
            result = write(self.db, lambda db: fn(book))
            if book.changed_state and self._mark is not None:
                self._mark.change()  # after the commit: whoever sees the new mark sees the row
            return result

    def read(self, key: str, fn: Callable[[Book], T]) -> T:
        with self._lock:
            return fn(SQLiteBook(self.db, key))

    def cooldown_until(self, key: str) -> float:
        with self._lock:
            db = self.db
            mark = self._mark.read() if self._mark is not None else None
            now = _monotonic()
            known = self._cooldowns.get(key)
            if mark is not None and known is not None and known[1] == mark and now < known[2]:
                return known[0]
            # The mark is read before the row: a change committed in between shows up as a new
            # mark at the next ask.
            row = db.execute("SELECT cooldown_until FROM state WHERE key = ?", (key,)).fetchone()
            until = float(row[0]) if row else 0.0
            if mark is not None:
                self._cooldowns[key] = (until, mark, now + RECHECK)
            return until

    def stamp(self, key: str, ticket: int, at: float) -> None:
        with self._lock:
            write(
                self.db,
                lambda db: db.execute(
                    "UPDATE calls SET at = ? WHERE rowid = ? AND key = ?", (at, ticket, key)
                ),
            )

    def rows(self, table: str) -> Iterator[Tuple[Any, ...]]:
        columns = ", ".join(check_table(table))
        with self._lock:
            found = self.db.execute(f"SELECT {columns} FROM {table} ORDER BY {columns}").fetchall()
        return iter([tuple(r) for r in found])

    def load(self, table: str, rows: Iterable[Tuple[Any, ...]]) -> int:
        check_table(table)
        batch = [tuple(r) for r in rows]
        with self._lock:
            write(self.db, lambda db: db.executemany(LOAD[table], batch))
            if table == "state" and self._mark is not None:
                self._mark.change()
        return len(batch)
