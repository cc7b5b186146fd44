"""The quota ledger in PostgreSQL ([core] database): one budget per API key for every replica
and every CLI on every host that shares the database.

Each take is one transaction that first takes a transaction-scoped advisory lock for the key
(pg_advisory_xact_lock(class, hashtext(key))): takers for the same key, on any host, run one
after the other, and each one's statements see what the previous ones committed (READ
COMMITTED takes a fresh snapshot per statement), so the window is never counted short and the
budget is never overspent. Keys do not wait on each other. The learned rate and a 429's
cooldown live in the same database, so a 429 seen by one host holds every host.

Stamps are epoch seconds from each host's clock (the governor's); keep the hosts
NTP-synchronised: a skew of s seconds can move a window's edge by s.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Dict, Iterable, Iterator, Optional, Tuple, TypeVar

from connectors.core import database

from .base import TABLES, Book, Ledger, LedgerUnavailable, Look, State, check_table

T = TypeVar("T")
LOCK_KEY = 0x7674_0201  # advisory lock class: (this, hashtext(key)) while a key's budget moves
CONNECTION_WAIT = 5.0  # seconds to wait for a pooled connection (the database may be down)
SCHEMA = database.Schema(
    "quota",
    (
        """
        CREATE TABLE quota_calls (
            id BIGSERIAL PRIMARY KEY, key TEXT NOT NULL, at DOUBLE PRECISION NOT NULL);
        CREATE INDEX quota_calls_key_at ON quota_calls (key, at);
        CREATE TABLE quota_days (
            key TEXT NOT NULL, day TEXT NOT NULL, used INTEGER NOT NULL, PRIMARY KEY (key, day));
        CREATE TABLE quota_state (
            key TEXT PRIMARY KEY, cooldown_until DOUBLE PRECISION NOT NULL,
            learned_rate INTEGER NOT NULL, learned_at DOUBLE PRECISION NOT NULL);
        CREATE TABLE quota_shares (
            key TEXT NOT NULL, day TEXT NOT NULL, connector TEXT NOT NULL,
            used INTEGER NOT NULL, PRIMARY KEY (key, day, connector));
        """,
    ),
)


def _upgrade_sqlite(path: Any) -> None:
    from .sqlite import SQLiteLedger

    ledger = SQLiteLedger(path)
    ledger.db.execute("SELECT 1")  # opened: an older file gets its current schema
    ledger.close()


COPY = database.copyable(
    database.Copyable(
        "quota", "quota.db", setting="quota.path", prepare=_upgrade_sqlite,
        tables=tuple(database.CopyTable(name, "quota_" + name, columns)
                     for name, columns in TABLES.items()),
    )
)  # fmt: skip
LOAD = {
    "calls": "INSERT INTO quota_calls (key, at) VALUES (%s, %s)",
    "days": "INSERT INTO quota_days VALUES (%s, %s, %s) ON CONFLICT (key, day) DO UPDATE SET "
    "used = EXCLUDED.used",
    "state": "INSERT INTO quota_state VALUES (%s, %s, %s, %s) ON CONFLICT (key) DO UPDATE SET "
    "cooldown_until = EXCLUDED.cooldown_until, learned_rate = EXCLUDED.learned_rate, "
    "learned_at = EXCLUDED.learned_at",
    "shares": "INSERT INTO quota_shares VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (key, day, connector) DO UPDATE SET used = EXCLUDED.used",
}


LOOK = """
WITH gone AS (DELETE FROM quota_calls WHERE %(prune)s AND key = %(key)s AND at <= %(since)s)
SELECT s.cooldown_until, s.learned_rate, s.learned_at,
    (SELECT used FROM quota_days WHERE key = %(key)s AND day = %(day)s),
    (SELECT json_object_agg(connector, used) FROM quota_shares
        WHERE %(shares)s AND key = %(key)s AND day = %(day)s),
    w.count, w.oldest
FROM (SELECT COUNT(*) AS count, MIN(at) AS oldest FROM quota_calls
      WHERE key = %(key)s AND at > %(since)s) w
LEFT JOIN quota_state s ON s.key = %(key)s
"""
RECORD = """
WITH call AS (INSERT INTO quota_calls (key, at) VALUES (%(key)s, %(at)s) RETURNING id),
day AS (INSERT INTO quota_days VALUES (%(key)s, %(day)s, 1) ON CONFLICT (key, day)
    DO UPDATE SET used = quota_days.used + 1),
share AS (INSERT INTO quota_shares SELECT %(key)s, %(day)s, %(connector)s, 1
    WHERE %(connector)s::text IS NOT NULL
    ON CONFLICT (key, day, connector) DO UPDATE SET used = quota_shares.used + 1)
SELECT id FROM call
"""


class PostgresBook(Book):
    """Each statement is a round trip to the database: `look` and `record` are one each."""

    def __init__(self, conn: Any, key: str) -> None:
        self.conn = conn
        self.key = key

    def look(self, day: str, since: float, shares: bool = False, prune: bool = False) -> Look:
        args = {"key": self.key, "day": day, "since": since, "shares": shares, "prune": prune}
        row = self.conn.execute(LOOK, args).fetchone()
        state = None if row[0] is None else (float(row[0]), int(row[1]), float(row[2]))
        used = {c: int(n) for c, n in (row[4] or {}).items()}
        return Look(state, int(row[3] or 0), used, int(row[5]), row[6])

    def state(self) -> Optional[State]:
        row = self.conn.execute(
            "SELECT cooldown_until, learned_rate, learned_at FROM quota_state WHERE key = %s",
            (self.key,),
        ).fetchone()
        return (float(row[0]), int(row[1]), float(row[2])) if row else None

    def put_state(self, cooldown_until: float, learned_rate: int, learned_at: float) -> None:
        self.conn.execute(
            "INSERT INTO quota_state VALUES (%s, %s, %s, %s) ON CONFLICT (key) DO UPDATE SET "
            "cooldown_until = GREATEST(quota_state.cooldown_until, EXCLUDED.cooldown_until), "
            "learned_rate = EXCLUDED.learned_rate, learned_at = EXCLUDED.learned_at",
            (self.key, cooldown_until, learned_rate, learned_at),
        )

    def day_used(self, day: str) -> int:
        row = self.conn.execute(
            "SELECT used FROM quota_days WHERE key = %s AND day = %s", (self.key, day)
        ).fetchone()
        return int(row[0]) if row else 0

    def shares_used(self, day: str) -> Dict[str, int]:
        rows = self.conn.execute(
            "SELECT connector, used FROM quota_shares WHERE key = %s AND day = %s",
            (self.key, day),
        ).fetchall()
        return {c: int(n) for c, n in rows}

    def window(self, since: float, prune: bool = False) -> Tuple[int, Optional[float]]:
        if prune:
            self.conn.execute(
                "DELETE FROM quota_calls WHERE key = %s AND at <= %s", (self.key, since)
            )
        count, oldest = self.conn.execute(
            "SELECT COUNT(*), MIN(at) FROM quota_calls WHERE key = %s AND at > %s",
            (self.key, since),
        ).fetchone()
        return int(count), oldest

    def record(self, at: float, day: str, connector: Optional[str] = None) -> int:
        args = {"key": self.key, "at": at, "day": day, "connector": connector}
        (ticket,) = self.conn.execute(RECORD, args).fetchone()
        return int(ticket)


class PostgresLedger(Ledger):
    def __init__(self, url: str) -> None:
        self._down = database.unavailable_errors()  # the database, not our SQL
        self.pool = database.pool(url, schema=SCHEMA)

    def close(self) -> None:
        self.pool.close()

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Any]:
        try:
            with self.pool.connection(timeout=CONNECTION_WAIT) as conn:
                yield conn
        except self._down as exc:
            raise LedgerUnavailable(database._one_line(exc)) from None

    def write(self, key: str, fn: Callable[[Book], T]) -> T:
        # Pipelined: BEGIN and the lock travel with fn's first read. The server still runs
        # them in order, so that read's snapshot is taken once the lock is held.
        with self._connection() as conn, conn.pipeline(), conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_KEY, key))
            return fn(PostgresBook(conn, key))

    def read(self, key: str, fn: Callable[[Book], T]) -> T:
        with self._connection() as conn, conn.transaction():
            return fn(PostgresBook(conn, key))

    def cooldown_until(self, key: str) -> float:
        with self._connection() as conn:
            row = conn.execute(
                "SELECT cooldown_until FROM quota_state WHERE key = %s", (key,)
            ).fetchone()
        return float(row[0]) if row else 0.0

    def stamp(self, key: str, ticket: int, at: float) -> None:
        # No key lock: the row lock orders it against a taker's prune of the same row.
        with self._connection() as conn:
            conn.execute(
                "UPDATE quota_calls SET at = %s WHERE id = %s AND key = %s", (at, ticket, key)
            )

    def rows(self, table: str) -> Iterator[Tuple[Any, ...]]:
        columns = ", ".join(check_table(table))
        with self.pool.connection() as conn:
            found = conn.execute(
                f"SELECT {columns} FROM quota_{table} ORDER BY {columns}"
            ).fetchall()
        return iter([tuple(r) for r in found])

    def load(self, table: str, rows: Iterable[Tuple[Any, ...]]) -> int:
        check_table(table)
        batch = [tuple(r) for r in rows]
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(LOAD[table], batch)
        return len(batch)
