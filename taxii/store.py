"""TAXII object storage: SQLite (WAL) behind a small interface, so that a shared database can
replace it for several server processes later.

date_added is integer microseconds, strictly increasing per collection (also across processes:
it is assigned inside the write transaction), which makes (date_added, id) a stable keyset for
stateless pagination: a `next` token stays valid across restarts and server processes.
"""

from __future__ import annotations

import heapq
import itertools
import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, TypeVar, Union

from connectors.core.cache import open_db, write

from .filters import canonical
from .pagination import BadToken, decode_next, encode_next, us_to_rfc3339

__all__ = ["BadToken", "Page", "Store", "new_status_id", "us_to_rfc3339"]
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


@dataclass
class Page:
    objects: List[Dict[str, Any]]  # stored rows: id, type, spec_version, modified, date_added, body
    more: bool
    next: str


class Store:
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
        clause = _version_clause(list(versions) or ["all"], args)
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
    def query(
        self,
        collection: str,
        *,
        limit: int,
        added_after: Optional[int] = None,
        next_token: Optional[str] = None,
        ids: Iterable[str] = (),
        types: Iterable[str] = (),
        versions: Iterable[str] = ("last",),
        spec_versions: Iterable[str] = (),
    ) -> Page:
        where = ["collection = ?"]
        args: List[Any] = [collection]
        if added_after is not None:
            where.append("date_added > ?")
            args.append(added_after)
        if next_token:
            stamp, oid = decode_next(next_token)
            where.append("(date_added, id) > (?, ?)")  # a row value: the index serves it
            args += [stamp, oid]
        for column, values in (("id", list(ids)), ("spec_version", list(spec_versions))):
            if values:
                where.append(f"{column} IN ({','.join('?' * len(values))})")
                args += values
        where.append(_version_clause(list(versions), args))
        sql = (
            "SELECT id, type, spec_version, modified, date_added, body FROM objects o WHERE "
            + " AND ".join(where)
        )
        wanted = list(dict.fromkeys(types))
        if not wanted:
            rows = self.db.execute(sql + " ORDER BY date_added, id LIMIT ?", (*args, limit + 1))
        else:
            # One query per type, each served in order by the (collection, type, date_added, id)
            # index, merged here: a rare type costs what a common one does, not a full scan.
            per_type = [
                self.db.execute(
                    sql + " AND type = ? ORDER BY date_added, id LIMIT ?", (*args, t, limit + 1)
                ).fetchall()
                for t in wanted
            ]
            rows = heapq.merge(*per_type, key=lambda r: (r[4], r[0]))
        rows = list(itertools.islice(rows, limit + 1))
        more = len(rows) > limit
        rows = rows[:limit]
        objs = [
            {
                "id": r[0],
                "type": r[1],
                "spec_version": r[2],
                "modified": r[3],
                "date_added": r[4],
                "body": r[5],
            }
            for r in rows
        ]
        token = encode_next(rows[-1][4], rows[-1][0]) if more and rows else ""
        return Page(objs, more and bool(token), token)

    def summary(self) -> Dict[str, Tuple[int, int]]:
        """collection id -> (objects stored, newest date_added in µs), for the status page."""
        rows = self.db.execute(
            "SELECT collection, COUNT(*), MAX(date_added) FROM objects GROUP BY collection"
        )
        return {c: (n, last) for c, n, last in rows}

    def has_collection_objects(self, collection: str) -> bool:
        return (
            self.db.execute(
                "SELECT 1 FROM objects WHERE collection = ? LIMIT 1", (collection,)
            ).fetchone()
            is not None
        )


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


def _version_clause(versions: List[str], args: List[Any]) -> str:
    """match[version]: last (default), first, all, or modified timestamps."""
    if "all" in versions:
        return "1"
    parts = []
    stamps = [canonical(v) for v in versions if v not in ("first", "last")]
    if "last" in versions:
        parts.append(
            "modified = (SELECT MAX(modified) FROM objects o2 "
            "WHERE o2.collection = o.collection AND o2.id = o.id)"
        )
    if "first" in versions:
        parts.append(
            "modified = (SELECT MIN(modified) FROM objects o2 "
            "WHERE o2.collection = o.collection AND o2.id = o.id)"
        )
    if stamps:
        parts.append(f"modified IN ({','.join('?' * len(stamps))})")
        args += stamps
    return "(" + " OR ".join(parts) + ")"


def new_status_id() -> str:
    return str(uuid.uuid4())
