"""The durable job table in SQLite (one host): an alert is stored before it is answered, and
jobs left running by a crash are queued again at start. WAL with synchronous=NORMAL: a
committed job survives any crash of the process (kill -9); only a power cut can lose the last
transactions (FULL would fsync every request and cost about half the accept rate)."""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from connectors.core.store.sqlite import open_db, write

from .base import Outbox

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, source TEXT NOT NULL, format TEXT NOT NULL, idem TEXT UNIQUE,
    body BLOB NOT NULL, state TEXT NOT NULL, result TEXT, created REAL NOT NULL,
    updated REAL NOT NULL, delivery TEXT NOT NULL DEFAULT 'none', attempts INTEGER NOT NULL
    DEFAULT 0, next_attempt REAL NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS jobs_delivery ON jobs(delivery, next_attempt);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, created);
"""


class SQLiteOutbox(Outbox):
    def __init__(self, path: Union[str, Path]) -> None:
        self.db = open_db(path, SCHEMA, 1)

    def close(self) -> None:
        self.db.close()

    def accept(self, source: str, fmt: str, body: bytes, idem: Optional[str]) -> Tuple[str, bool]:
        """(job id, True when new); a known idempotency key returns the first job."""
        now = time.time()
        jid = str(uuid.uuid4())

        def txn(db: sqlite3.Connection) -> Tuple[str, bool]:
            if idem:
                row = db.execute("SELECT id FROM jobs WHERE idem = ?", (idem,)).fetchone()
                if row:
                    return row[0], False
            db.execute(
                "INSERT INTO jobs (id, source, format, idem, body, state, result, created, "
                "updated) VALUES (?, ?, ?, ?, ?, 'queued', NULL, ?, ?)",
                (jid, source, fmt, idem, body, now, now),
            )
            return jid, True

        return write(self.db, txn)

    def job_key(self) -> bytes:
        """A random key made once per outbox. Per-job read tokens are derived from it, so they
        survive restarts and hold for every process sharing the outbox."""

        def txn(db: sqlite3.Connection) -> bytes:
            db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB)")
            db.execute("INSERT OR IGNORE INTO meta VALUES ('job_key', ?)", (os.urandom(32),))
            return bytes(db.execute("SELECT value FROM meta WHERE name = 'job_key'").fetchone()[0])

        return write(self.db, txn)

    def claim(self, limit: int = 10) -> List[Dict[str, Any]]:
        def txn(db: sqlite3.Connection) -> List[Dict[str, Any]]:
            rows = db.execute(
                "SELECT id, source, format, body FROM jobs WHERE state = 'queued' "
                "AND next_attempt <= ? ORDER BY created LIMIT ?",
                (time.time(), limit),
            ).fetchall()
            db.executemany(
                "UPDATE jobs SET state = 'running', updated = ? WHERE id = ?",
                [(time.time(), r[0]) for r in rows],
            )
            return [{"id": r[0], "source": r[1], "format": r[2], "body": r[3]} for r in rows]

        return write(self.db, txn)

    def finish(self, jid: str, state: str, result: Dict[str, Any], deliver: bool = False) -> None:
        delivery = "pending" if deliver else "none"
        write(
            self.db,
            lambda db: db.execute(
                "UPDATE jobs SET state = ?, result = ?, updated = ?, delivery = ?, "
                "next_attempt = 0 WHERE id = ?",
                (state, json.dumps(result), time.time(), delivery, jid),
            ),
        )

    def retry_job(self, jid: str, when: float) -> None:
        """Queue a job again, not to be claimed before `when` (next_attempt schedules the job
        until it is finished, then its callback)."""
        write(
            self.db,
            lambda db: db.execute(
                "UPDATE jobs SET state = 'queued', next_attempt = ?, updated = ? WHERE id = ?",
                (when, time.time(), jid),
            ),
        )

    def due_deliveries(self, limit: int = 20) -> List[Dict[str, Any]]:
        rows = self.db.execute(
            "SELECT id, source, result, attempts FROM jobs WHERE delivery = 'pending' AND "
            "next_attempt <= ? ORDER BY next_attempt LIMIT ?",
            (time.time(), limit),
        ).fetchall()
        return [{"id": r[0], "source": r[1], "result": r[2], "attempts": r[3]} for r in rows]

    def delivered(self, jid: str, attempts: int) -> None:
        write(
            self.db,
            lambda db: db.execute(
                "UPDATE jobs SET delivery = 'delivered', attempts = ?, last_error = '' "
                "WHERE id = ?",
                (attempts, jid),
            ),
        )

    def retry_later(self, jid: str, attempts: int, when: float, error: str, dead: bool) -> None:
        write(
            self.db,
            lambda db: db.execute(
                "UPDATE jobs SET delivery = ?, attempts = ?, next_attempt = ?, last_error = ? "
                "WHERE id = ?",
                ("dead" if dead else "pending", attempts, when, error[:500], jid),
            ),
        )

    def replay(self, jid: Optional[str] = None) -> int:
        """Dead letters (one, or all) go back to pending with a fresh attempt count."""
        sql = (
            "UPDATE jobs SET delivery = 'pending', attempts = 0, next_attempt = 0 "
            "WHERE delivery = 'dead'"
        )
        args: Tuple[Any, ...] = ()
        if jid:
            sql += " AND id = ?"
            args = (jid,)
        return write(self.db, lambda db: db.execute(sql, args).rowcount)

    def dead_letters(self, limit: int = 100) -> List[Dict[str, Any]]:
        """Dead-lettered callbacks, oldest first (for `vtconnect webhook dead`)."""
        rows = self.db.execute(
            "SELECT id, source, attempts, last_error, updated FROM jobs WHERE delivery = 'dead' "
            "ORDER BY updated LIMIT ?",
            (limit,),
        ).fetchall()
        keys = ("id", "source", "attempts", "last_error", "updated")
        return [dict(zip(keys, r)) for r in rows]

    def prune(self, before: float, batch: int = 1000) -> int:
        """Drop finished jobs accepted before `before` whose callback is delivered or not
        wanted (dead letters stay for `replay`); in short transactions, so accepting alerts
        never waits long. Their idempotency keys go with them."""
        total = 0
        while True:
            n = write(
                self.db,
                lambda db: (
                    db.execute(
                        "DELETE FROM jobs WHERE rowid IN (SELECT rowid FROM jobs WHERE state IN "
                        "('done', 'failed') AND created < ? AND delivery IN ('none', 'delivered') "
                        "LIMIT ?)",
                        (before, batch),
                    ).rowcount
                ),
            )
            total += n
            if n < batch:
                return total

    def requeue_running(self) -> int:
        return write(
            self.db,
            lambda db: (
                db.execute("UPDATE jobs SET state = 'queued' WHERE state = 'running'").rowcount
            ),
        )

    def get(self, jid: str) -> Optional[Dict[str, Any]]:
        row = self.db.execute(
            "SELECT id, source, format, state, result, created, updated, delivery, attempts, "
            "last_error FROM jobs WHERE id = ?",
            (jid,),
        ).fetchone()
        if row is None:
            return None
        return {
            "id": row[0],
            "source": row[1],
            "format": row[2],
            "state": row[3],
            "result": json.loads(row[4]) if row[4] else None,
            "created": row[5],
            "updated": row[6],
            "delivery": row[7],
            "attempts": row[8],
            "last_error": row[9],
        }

    def delivery_counts(self) -> Dict[str, int]:
        rows = self.db.execute(
            "SELECT delivery, COUNT(*) FROM jobs WHERE delivery != 'none' GROUP BY delivery"
        ).fetchall()
        return dict(rows)

    def counts(self) -> Dict[str, int]:
        return dict(self.db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall())
