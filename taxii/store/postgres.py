"""The TAXII object store in PostgreSQL: one store shared by every `vtconnect serve` replica.

date_added comes from the database's clock (replicas' clocks may differ) and continues after
the collection's newest one, under one advisory lock per collection held to the end of the
write transaction: stamps are strictly increasing in commit order, so a reader never sees a
lower stamp appear behind its `next` token, whichever replica issued it.

Each row says whether it is its object's newest version (`latest`), kept exact by every write
under that same lock; partial indexes on the latest rows serve the default `match[version]=last`
in (date_added, id) order, so a page reads its rows and nothing else (a MAX per row before).
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, TypeVar

from connectors.core import database

from ..filters import canonical
from .base import ObjectStore, version_clause

T = TypeVar("T")
LOCK_OBJECTS = 0x7674_0101  # advisory lock class: (this, hashtext(collection))
LOCK_STATE = 0x7674_0102  # (this, hashtext(state key)): one publisher moves a cursor at a time
SCHEMA = database.Schema(
    "taxii",
    (
        """
        CREATE TABLE taxii_objects (
            collection TEXT NOT NULL, id TEXT COLLATE "C" NOT NULL, type TEXT NOT NULL,
            spec_version TEXT NOT NULL, modified TEXT COLLATE "C" NOT NULL,
            date_added BIGINT NOT NULL, body TEXT NOT NULL,
            PRIMARY KEY (collection, id, modified));
        CREATE UNIQUE INDEX taxii_objects_keyset ON taxii_objects (collection, date_added, id);
        CREATE INDEX taxii_objects_types ON taxii_objects (collection, type, date_added, id);
        CREATE TABLE taxii_status (
            id TEXT PRIMARY KEY, collection TEXT NOT NULL, body TEXT NOT NULL);
        CREATE TABLE taxii_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        """,
        # 2: each object's newest version flagged, with partial indexes over the latest rows.
        # The column is added as true (no rewrite); only the older versions of objects with
        # several are then written. No default after: every writer says which rows are latest.
        """
        SET LOCAL enable_seqscan = on;
        SET LOCAL enable_bitmapscan = on;
        ALTER TABLE taxii_objects ADD COLUMN latest BOOLEAN NOT NULL DEFAULT true;
        ALTER TABLE taxii_objects ALTER COLUMN latest DROP DEFAULT;
        UPDATE taxii_objects o SET latest = false
            FROM (SELECT collection, id, MAX(modified) AS top FROM taxii_objects
                  GROUP BY 1, 2 HAVING COUNT(*) > 1) m
            WHERE o.collection = m.collection AND o.id = m.id AND o.modified <> m.top;
        CREATE INDEX taxii_objects_keyset_latest ON taxii_objects (collection, date_added, id)
            WHERE latest;
        CREATE INDEX taxii_objects_types_latest
            ON taxii_objects (collection, type, date_added, id) WHERE latest;
        """,
    ),
)
NEXT_STAMP = (
    "SELECT GREATEST((extract(epoch FROM clock_timestamp()) * 1000000)::bigint, "
    "COALESCE(MAX(date_added), 0) + 1) FROM taxii_objects WHERE collection = %s"
)
# Every query here has an index that serves it in order. The planner cannot estimate the
# version filter (a correlated MAX per id) and, past a few thousand rows, would scan and sort
# the whole collection for a 100-row page: steer it off full scans on this store's connections.
SESSION = ("SET enable_seqscan = off", "SET enable_bitmapscan = off")
INSERT = (
    "INSERT INTO taxii_objects (collection, id, type, spec_version, modified, date_added, body, "
    "latest) SELECT %s, * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], "
    "%s::bigint[], %s::text[], %s::boolean[]) ON CONFLICT DO NOTHING RETURNING id, modified"
)
NEWEST = (
    "SELECT id, MAX(modified) FROM taxii_objects WHERE collection = %s AND id = ANY(%s::text[]) "
    "GROUP BY id"
)
SUPERSEDED = (  # the versions a newer one just replaced as their object's latest
    "UPDATE taxii_objects o SET latest = false FROM unnest(%s::text[], %s::text[]) AS n(id, top) "
    "WHERE o.collection = %s AND o.id = n.id AND o.latest AND o.modified <> n.top"
)
RELATEST = (  # after a delete: the newest version left is the latest again
    "UPDATE taxii_objects SET latest = (modified = (SELECT MAX(modified) FROM taxii_objects "
    "WHERE collection = %s AND id = %s)) WHERE collection = %s AND id = %s"
)


class PostgresStore(ObjectStore):
    OBJECTS = "taxii_objects"
    LATEST = "latest"  # the column flagging each object's newest version

    def __init__(self, url: str) -> None:
        self.pool = database.pool(url, session=SESSION, schema=SCHEMA)

    def close(self) -> None:
        self.pool.close()

    def _write(self, fn: Callable[[Any], T]) -> T:
        with self.pool.connection() as conn, conn.transaction():
            return fn(conn)

    def _rows(self, sql: str, args: Sequence[Any]) -> List[Tuple[Any, ...]]:
        if _has_nul(args):  # PostgreSQL text cannot hold NUL: such a value matches nothing
            return []
        with self.pool.connection() as conn:
            return conn.execute(sql.replace("?", "%s"), args).fetchall()

    # -- writing -----------------------------------------------------------------------------
    def add(self, collection: str, objects: Sequence[Dict[str, Any]]) -> List[bool]:
        return self._write(lambda conn: _insert(conn, collection, objects))

    def publish(
        self, batches: Dict[str, Sequence[Dict[str, Any]]], cursor: str, seen: str, upto: str
    ) -> Optional[int]:
        def txn(conn: Any) -> Optional[int]:
            conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_STATE, cursor))
            row = conn.execute("SELECT value FROM taxii_state WHERE key = %s", (cursor,)).fetchone()
            if (row[0] if row else "") != seen:
                return None
            # Collections in one order: two transactions never wait on each other's locks.
            stored = sum(sum(_insert(conn, c, batches[c])) for c in sorted(batches))
            _set_state(conn, cursor, upto)
            return stored

        return self._write(txn)

    def delete(self, collection: str, oid: str, versions: Sequence[str] = ("all",)) -> int:
        args: List[Any] = [collection, oid]
        clause = version_clause(self.OBJECTS, list(versions) or ["all"], args, self.LATEST)
        sql = f"DELETE FROM taxii_objects AS o WHERE collection = ? AND id = ? AND {clause}"
        if _has_nul(args):
            return 0

        def txn(conn: Any) -> int:
            _lock(conn, collection)
            gone = conn.execute(sql.replace("?", "%s"), args).rowcount
            if gone:
                conn.execute(RELATEST, (collection, oid, collection, oid))
            return gone

        return self._write(txn)

    def save_status(self, collection: str, body: Dict[str, Any]) -> None:
        self._write(
            lambda conn: conn.execute(
                "INSERT INTO taxii_status VALUES (%s, %s, %s) ON CONFLICT (id) DO UPDATE "
                "SET collection = EXCLUDED.collection, body = EXCLUDED.body",
                (body["id"], collection, json.dumps(body)),
            )
        )

    def status(self, sid: str) -> Optional[Tuple[str, Dict[str, Any]]]:
        rows = self._rows("SELECT collection, body FROM taxii_status WHERE id = ?", (sid,))
        return (rows[0][0], json.loads(rows[0][1])) if rows else None

    def get_state(self, key: str, default: str = "") -> str:
        rows = self._rows("SELECT value FROM taxii_state WHERE key = ?", (key,))
        return rows[0][0] if rows else default

    def set_state(self, key: str, value: str) -> None:
        self._write(lambda conn: _set_state(conn, key, value))


def _lock(conn: Any, collection: str) -> None:
    """The collection's write lock, to the end of the transaction."""
    conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_OBJECTS, collection))


def _has_nul(args: Sequence[Any]) -> bool:
    return any(isinstance(a, str) and "\x00" in a for a in args)


def _set_state(conn: Any, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO taxii_state VALUES (%s, %s) ON CONFLICT (key) DO UPDATE "
        "SET value = EXCLUDED.value",
        (key, value),
    )


def _insert(conn: Any, collection: str, objects: Sequence[Dict[str, Any]]) -> List[bool]:
    """One INSERT for the batch inside the caller's transaction, under the collection's lock."""
    out = [False] * len(objects)
    firsts: Dict[Tuple[str, str], int] = {}  # a version twice in one batch: the first one counts
    for i, obj in enumerate(objects):
        firsts.setdefault(
            (obj["id"], canonical(obj.get("modified") or obj.get("created") or "")), i
        )
    if not firsts:
        return out
    _lock(conn, collection)
    (stamp,) = conn.execute(NEXT_STAMP, (collection,)).fetchone()
    # Each object's newest version: the stored one, unless this batch brings a newer one
    # (canonical `modified` strings order as their instants do, as COLLATE "C" compares them).
    ids = list(dict.fromkeys(oid for oid, _ in firsts))
    had: Dict[str, str] = dict(conn.execute(NEWEST, (collection, ids)).fetchall())
    top = dict(had)
    for oid, modified in firsts:
        if oid not in top or modified > top[oid]:
            top[oid] = modified
    picked = [(key, objects[i]) for key, i in firsts.items()]
    columns: Tuple[List[Any], ...] = ([], [], [], [], [], [], [])
    for n, ((oid, modified), obj) in enumerate(picked):
        latest = top[oid] == modified != had.get(oid)  # the newest, and not stored already
        row = (oid, obj["type"], obj.get("spec_version", "2.1"), modified, stamp + n,
               json.dumps(obj, separators=(",", ":")), latest)  # fmt: skip
        for column, value in zip(columns, row):
            column.append(value)
    stored = set(conn.execute(INSERT, (collection, *columns)).fetchall())
    newer = [oid for oid in had if top[oid] != had[oid]]
    if newer:
        conn.execute(SUPERSEDED, (newer, [top[oid] for oid in newer], collection))
    for key, i in firsts.items():
        out[i] = key in stored
    return out
