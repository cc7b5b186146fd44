"""The TAXII object store in SQLite (WAL): the embedded default, one file shared by the server
processes of one host.

date_added is assigned inside the write transaction (BEGIN IMMEDIATE: the file's one writer at
a time is the per-collection lock), so it is strictly increasing also across processes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, TypeVar, Union

from connectors.core.store.sqlite import open_db, write

from ..filters import canonical
from .base import ObjectStore, version_clause

T = TypeVar("T")

SCHEMA_VERSION = 2  # 2: objects_types index
CANONICAL = "versions_canonical"  # state key: `modified` kept in one spelling per instant
SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    collection TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL,
    spec_version TEXT NOT NULL, modified TEXT NOT NULL, date_added INTEGER NOT NULL,
    body TEXT NOT NULL, UNIQUE (collection, id, modified));
CREATE UNIQUE INDEX IF NOT EXISTS objects_keyset ON objects(collection, date_added, id);
CREATE INDEX IF NOT EXISTS objects_versions ON objects(collection, id, modified);
CREATE INDEX IF NOT EXISTS objects_types ON objects(collection, type, date_added, id);
CREATE TABLE IF NOT EXISTS status (
    id TEXT PRIMARY KEY, collection TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class SQLiteStore(ObjectStore):
    def __init__(self, path: Union[str, Path]) -> None:
        # Reads and writes on separate connections: a write running in a worker thread never
        # shows a reader its uncommitted rows (WAL: readers see the last commit).
        self.db = open_db(path, SCHEMA, SCHEMA_VERSION)
        self._wdb = open_db(path, SCHEMA, SCHEMA_VERSION)
        self._lock = threading.Lock()
        if self.get_state(CANONICAL) != "1":
            self._write(_canonicalise)

    def close(self) -> None:
        self.db.close()
        self._wdb.close()

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            return write(self._wdb, fn)

    # -- writing -----------------------------------------------------------------------------
    def add(self, collection: str, objects: Sequence[Dict[str, Any]]) -> List[bool]:
        """Store objects; True for each one stored, False for an id+modified already there."""
        return self._write(lambda db: _insert(db, collection, objects))

    def publish(
        self, batches: Dict[str, Sequence[Dict[str, Any]]], cursor: str, seen: str, upto: str
    ) -> Optional[int]:
        """Store a publisher's batches and move its cursor from `seen` to `upto` in one
        transaction; None (nothing stored) when another process moved the cursor first, so
        several server processes on one database publish each verdict once."""

        def txn(db: sqlite3.Connection) -> Optional[int]:
            row = db.execute("SELECT value FROM state WHERE key = ?", (cursor,)).fetchone()
            if (row[0] if row else "") != seen:
                return None
            stored = sum(sum(_insert(db, coll, objs)) for coll, objs in batches.items())
            db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (cursor, upto))
            return stored

        return self._write(txn)

    def delete(self, collection: str, oid: str, versions: Sequence[str] = ("all",)) -> int:
        """Delete an object's versions (match[version]: all by default, first, last or
        timestamps); returns how many were deleted."""
        args: List[Any] = [collection, oid]
        clause = version_clause("objects", list(versions) or ["all"], args)
        sql = f"DELETE FROM objects AS o WHERE collection = ? AND id = ? AND {clause}"
        return self._write(lambda db: db.execute(sql, args).rowcount)

    def save_status(self, collection: str, body: Dict[str, Any]) -> None:
        self._write(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO status VALUES (?, ?, ?)",
                (body["id"], collection, json.dumps(body)),
            ),
        )

    def status(self, sid: str) -> Optional[Tuple[str, Dict[str, Any]]]:
        """(collection id, status resource) for a status id."""
        row = self.db.execute("SELECT collection, body FROM status WHERE id = ?", (sid,)).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def get_state(self, key: str, default: str = "") -> str:
        row = self.db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_state(self, key: str, value: str) -> None:
        self._write(
            lambda db: db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (key, value)),
        )

    # -- reading -----------------------------------------------------------------------------
    def _rows(self, sql: str, args: Sequence[Any]) -> List[Tuple[Any, ...]]:
        return self.db.execute(sql, args).fetchall()


def _insert(
    db: sqlite3.Connection, collection: str, objects: Sequence[Dict[str, Any]]
) -> List[bool]:
    """Insert inside the caller's write transaction: date_added continues after the
    collection's newest one, so it is strictly increasing even across processes."""
    last = db.execute(
        "SELECT MAX(date_added) FROM objects WHERE collection = ?", (collection,)
    ).fetchone()[0]
    stamp = max(int(time.time() * 1_000_000), (last or 0) + 1)
    out = []
    for obj in objects:
        modified = canonical(obj.get("modified") or obj.get("created") or "")
        cur = db.execute(
            "INSERT OR IGNORE INTO objects VALUES (?, ?, ?, ?, ?, ?, ?)",
            (collection, obj["id"], obj["type"], obj.get("spec_version", "2.1"), modified,
             stamp, json.dumps(obj, separators=(",", ":"))),
        )  # fmt: skip
        out.append(cur.rowcount == 1)
        if cur.rowcount == 1:
            stamp += 1
    return out


def _canonicalise(db: sqlite3.Connection) -> None:
    """Stores written before versions were kept in one spelling: rewrite them, and drop the
    second copy of a version stored under two spellings (the first one added stays)."""
    rows = db.execute(
        "SELECT rowid, modified FROM objects ORDER BY collection, id, date_added"
    ).fetchall()
    for rowid, modified in rows:
        fixed = canonical(modified)
        if fixed != modified:
            try:
                db.execute("UPDATE objects SET modified = ? WHERE rowid = ?", (fixed, rowid))
            except sqlite3.IntegrityError:
                db.execute("DELETE FROM objects WHERE rowid = ?", (rowid,))
    db.execute("INSERT OR REPLACE INTO state VALUES (?, '1')", (CANONICAL,))
