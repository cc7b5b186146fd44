"""The webhook outbox in PostgreSQL: one job table shared by every `vtconnect serve --webhook`
replica behind a load balancer.

A replica claims jobs with FOR UPDATE SKIP LOCKED (replicas never wait on each other, never
take the same job) and holds them for a lease; a job whose lease ran out (its replica was
killed) is claimed again by any replica. Callbacks are claimed the same way: a due delivery is
pushed a lease ahead while one replica sends it. Times are epoch seconds from each host's clock
(keep them NTP-synchronised; the lease is minutes, so small skews do not matter).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar

from connectors.core import database

from .base import Outbox

T = TypeVar("T")
SCHEMA = database.Schema(
    "webhook",
    (
        """
        CREATE TABLE webhook_jobs (
            id TEXT PRIMARY KEY, source TEXT NOT NULL, format TEXT NOT NULL, idem TEXT UNIQUE,
            body BYTEA NOT NULL, state TEXT NOT NULL, result TEXT,
            created DOUBLE PRECISION NOT NULL, updated DOUBLE PRECISION NOT NULL,
            delivery TEXT NOT NULL DEFAULT 'none', attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt DOUBLE PRECISION NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '',
            owner TEXT NOT NULL DEFAULT '', lease_until DOUBLE PRECISION NOT NULL DEFAULT 0);
        CREATE INDEX webhook_jobs_queue ON webhook_jobs (state, created);
        CREATE INDEX webhook_jobs_delivery ON webhook_jobs (delivery, next_attempt);
        CREATE TABLE webhook_meta (name TEXT PRIMARY KEY, value BYTEA NOT NULL);
        """,
    ),
)
COPIED = ("id", "source", "format", "idem", "body", "state", "result", "created", "updated",
          "delivery", "attempts", "next_attempt", "last_error")  # fmt: skip


def _upgrade_sqlite(path: Path) -> None:
    from .sqlite import SQLiteOutbox

    SQLiteOutbox(path).close()  # an older file gets its current schema


def _copied_job(row: Tuple[Any, ...]) -> Tuple[Any, ...]:
    idem = row[3]
    return (*row[:3], _text(idem) if idem else idem, *row[4:])  # keys spelled as accept() does


COPY = database.copyable(
    database.Copyable(
        "webhook", "webhook.db", setting="webhook.outbox", prepare=_upgrade_sqlite, tables=(
            database.CopyTable("jobs", "webhook_jobs", COPIED,
                               "SELECT " + ", ".join("CAST(body AS BLOB)" if c == "body" else c
                                                     for c in COPIED) + " FROM jobs",
                               convert=_copied_job),
            database.CopyTable("meta", "webhook_meta", ("name", "value"),
                               "SELECT name, CAST(value AS BLOB) FROM meta"),
        ),
    )
)  # fmt: skip
JOB_KEYS = ("id", "source", "format", "state", "result", "created", "updated", "delivery",
            "attempts", "last_error")  # fmt: skip


class PostgresOutbox(Outbox):
    def __init__(self, url: str, lease: float = 300.0) -> None:
        self.lease = lease
        self.owner = uuid.uuid4().hex  # this process: what requeue_running gives back
        self.pool = database.pool(url, schema=SCHEMA)

    def close(self) -> None:
        self.pool.close()

    def _run(self, fn: Callable[[Any], T]) -> T:
        with self.pool.connection() as conn, conn.transaction():
            return fn(conn)

    def _fetch(self, sql: str, args: Tuple[Any, ...] = ()) -> List[Tuple[Any, ...]]:
        return self._run(lambda conn: conn.execute(sql, args).fetchall())

    def _count(self, sql: str, args: Tuple[Any, ...] = ()) -> int:
        """Rows changed by one statement."""
        return self._run(lambda conn: conn.execute(sql, args).rowcount)

    def accept(self, source: str, fmt: str, body: bytes, idem: Optional[str]) -> Tuple[str, bool]:
        now = time.time()
        idem = _text(idem) if idem else idem  # keys come from the sender

        def txn(conn: Any) -> Tuple[str, bool]:
            row = conn.execute(
                "INSERT INTO webhook_jobs (id, source, format, idem, body, state, created, "
                "updated) VALUES (%s, %s, %s, %s, %s, 'queued', %s, %s) "
                "ON CONFLICT (idem) DO NOTHING RETURNING id",
                (str(uuid.uuid4()), source, fmt, idem, body, now, now),
            ).fetchone()
            if row:
                return row[0], True
            first = conn.execute("SELECT id FROM webhook_jobs WHERE idem = %s", (idem,))
            return first.fetchone()[0], False

        return self._run(txn)

    def job_key(self) -> bytes:
        def txn(conn: Any) -> bytes:
            conn.execute(
                "INSERT INTO webhook_meta VALUES ('job_key', %s) ON CONFLICT (name) DO NOTHING",
                (os.urandom(32),),
            )
            row = conn.execute("SELECT value FROM webhook_meta WHERE name = 'job_key'").fetchone()
            return bytes(row[0])

        return self._run(txn)

    def claim(self, limit: int = 10) -> List[Dict[str, Any]]:
        now = time.time()
        rows = self._fetch(
            "UPDATE webhook_jobs SET state = 'running', owner = %s, lease_until = %s, "
            "updated = %s WHERE id IN (SELECT id FROM webhook_jobs WHERE (state = 'queued' AND "
            "next_attempt <= %s) OR (state = 'running' AND lease_until < %s) ORDER BY created "
            "LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING id, source, format, body, created",
            (self.owner, now + self.lease, now, now, now, limit),
        )
        rows.sort(key=lambda r: r[4])
        return [{"id": r[0], "source": r[1], "format": r[2], "body": bytes(r[3])} for r in rows]

    def finish(self, jid: str, state: str, result: Dict[str, Any], deliver: bool = False) -> None:
        self._count(
            "UPDATE webhook_jobs SET state = %s, result = %s, updated = %s, delivery = %s, "
            "owner = '', lease_until = 0, next_attempt = 0 WHERE id = %s",
            (state, json.dumps(result), time.time(), "pending" if deliver else "none", jid),
        )

    def retry_job(self, jid: str, when: float) -> None:
        self._count(
            "UPDATE webhook_jobs SET state = 'queued', next_attempt = %s, updated = %s, "
            "owner = '', lease_until = 0 WHERE id = %s",
            (when, time.time(), jid),
        )

    def due_deliveries(self, limit: int = 20) -> List[Dict[str, Any]]:
        now = time.time()
        rows = self._fetch(
            "UPDATE webhook_jobs SET next_attempt = %s WHERE id IN (SELECT id FROM webhook_jobs "
            "WHERE delivery = 'pending' AND next_attempt <= %s ORDER BY next_attempt LIMIT %s "
            "FOR UPDATE SKIP LOCKED) RETURNING id, source, result, attempts",
            (now + self.lease, now, limit),
        )
        return [{"id": r[0], "source": r[1], "result": r[2], "attempts": r[3]} for r in rows]

    def delivered(self, jid: str, attempts: int) -> None:
        self._count(
            "UPDATE webhook_jobs SET delivery = 'delivered', attempts = %s, last_error = '' "
            "WHERE id = %s",
            (attempts, jid),
        )

    def retry_later(self, jid: str, attempts: int, when: float, error: str, dead: bool) -> None:
        self._count(
            "UPDATE webhook_jobs SET delivery = %s, attempts = %s, next_attempt = %s, "
            "last_error = %s WHERE id = %s",
            ("dead" if dead else "pending", attempts, when, error[:500].replace("\x00", " "), jid),
        )

    def replay(self, jid: Optional[str] = None) -> int:
        sql = (
            "UPDATE webhook_jobs SET delivery = 'pending', attempts = 0, next_attempt = 0 "
            "WHERE delivery = 'dead'"
        )
        if jid and "\x00" in jid:
            return 0
        return self._count(sql + " AND id = %s", (jid,)) if jid else self._count(sql)

    def dead_letters(self, limit: int = 100) -> List[Dict[str, Any]]:
        rows = self._fetch(
            "SELECT id, source, attempts, last_error, updated FROM webhook_jobs "
            "WHERE delivery = 'dead' ORDER BY updated LIMIT %s",
            (limit,),
        )
        return [dict(zip(("id", "source", "attempts", "last_error", "updated"), r)) for r in rows]

    def prune(self, before: float, batch: int = 1000) -> int:
        total = 0
        while True:
            n = self._count(
                "DELETE FROM webhook_jobs WHERE id IN (SELECT id FROM webhook_jobs WHERE state "
                "IN ('done', 'failed') AND created < %s AND delivery IN ('none', 'delivered') "
                "LIMIT %s)",
                (before, batch),
            )
            total += n
            if n < batch:
                return total

    def requeue_running(self) -> int:
        # Only this process's: other replicas' running jobs are theirs until their lease ends.
        return self._count(
            "UPDATE webhook_jobs SET state = 'queued', owner = '', lease_until = 0 "
            "WHERE state = 'running' AND owner = %s",
            (self.owner,),
        )

    def get(self, jid: str) -> Optional[Dict[str, Any]]:
        if "\x00" in jid:  # from a URL; no job id holds one
            return None
        rows = self._fetch(f"SELECT {', '.join(JOB_KEYS)} FROM webhook_jobs WHERE id = %s", (jid,))
        if not rows:
            return None
        job = dict(zip(JOB_KEYS, rows[0]))
        job["result"] = json.loads(job["result"]) if job["result"] else None
        return job

    def delivery_counts(self) -> Dict[str, int]:
        sql = "SELECT delivery, COUNT(*) FROM webhook_jobs WHERE delivery != 'none' GROUP BY 1"
        return dict(self._fetch(sql))

    def counts(self) -> Dict[str, int]:
        return dict(self._fetch("SELECT state, COUNT(*) FROM webhook_jobs GROUP BY state"))


def _text(value: str) -> str:
    """PostgreSQL text cannot hold NUL: escape it (and the escape character), one to one."""
    return value.replace("\\", "\\\\").replace("\x00", "\\0")
