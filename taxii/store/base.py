"""The TAXII object store's interface, and the SQL both backends share.

date_added is integer microseconds, strictly increasing per collection (each backend assigns
it inside the write transaction, under a per-collection lock), which makes (date_added, id) a
stable keyset for stateless pagination: a `next` token stays valid across restarts, server
processes and replicas. SQL here is written with `?` placeholders; a backend using another
style rewrites them in `_rows`.
"""

from __future__ import annotations

import heapq
import itertools
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from ..filters import canonical
from ..pagination import decode_next, encode_next

ROW = "id, type, spec_version, modified, date_added, body"
KEYS = ("id", "type", "spec_version", "modified", "date_added", "body")


@dataclass
class Page:
    objects: List[Dict[str, Any]]  # stored rows: id, type, spec_version, modified, date_added, body
    more: bool
    next: str


class ObjectStore(ABC):
    """Objects per collection (one row per id + modified), upload statuses and small state
    values (cursors of the publisher and the client)."""

    OBJECTS = "objects"  # table names: a shared PostgreSQL database prefixes them
    LATEST = ""  # a column flagging each object's newest version, when the backend keeps one

    @abstractmethod
    def close(self) -> None: ...

    # -- writing -----------------------------------------------------------------------------
    @abstractmethod
    def add(self, collection: str, objects: Sequence[Dict[str, Any]]) -> List[bool]:
        """Store objects in one transaction; True for each one stored, False for an
        id+modified already there (also earlier in the same batch)."""

    @abstractmethod
    def publish(
        self, batches: Dict[str, Sequence[Dict[str, Any]]], cursor: str, seen: str, upto: str
    ) -> Optional[int]:
        """Store a publisher's batches and move its cursor from `seen` to `upto` in one
        transaction; None (nothing stored) when another process moved the cursor first, so
        several server processes on one database publish each verdict once."""

    @abstractmethod
    def delete(self, collection: str, oid: str, versions: Sequence[str] = ("all",)) -> int:
        """Delete an object's versions (match[version]: all by default, first, last or
        timestamps); returns how many were deleted."""

    @abstractmethod
    def save_status(self, collection: str, body: Dict[str, Any]) -> None: ...

    @abstractmethod
    def status(self, sid: str) -> Optional[Tuple[str, Dict[str, Any]]]:
        """(collection id, status resource) for a status id."""

    @abstractmethod
    def get_state(self, key: str, default: str = "") -> str: ...

    @abstractmethod
    def set_state(self, key: str, value: str) -> None: ...

    # -- reading -----------------------------------------------------------------------------
    @abstractmethod
    def _rows(self, sql: str, args: Sequence[Any]) -> List[Tuple[Any, ...]]:
        """Run one read-only statement written with `?` placeholders."""

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
        where.append(version_clause(self.OBJECTS, list(versions), args, self.LATEST))
        sql = f"SELECT {ROW} FROM {self.OBJECTS} o WHERE " + " AND ".join(where)
        wanted = list(dict.fromkeys(types))
        if not wanted:
            rows: Iterable[Tuple[Any, ...]] = self._rows(
                sql + " ORDER BY date_added, id LIMIT ?", (*args, limit + 1)
            )
        else:
            # One query per type, each served in order by the (collection, type, date_added, id)
            # index, merged here: a rare type costs what a common one does, not a full scan.
            per_type = [
                self._rows(sql + " AND type = ? ORDER BY date_added, id LIMIT ?",
                           (*args, t, limit + 1))
                for t in wanted
            ]  # fmt: skip
            rows = heapq.merge(*per_type, key=lambda r: (r[4], r[0]))
        got = list(itertools.islice(rows, limit + 1))
        more = len(got) > limit
        got = got[:limit]
        objs = [dict(zip(KEYS, r)) for r in got]
        token = encode_next(got[-1][4], got[-1][0]) if more and got else ""
        return Page(objs, more and bool(token), token)

    def window(
        self,
        collection: str,
        *,
        offset: int,
        limit: int,
        added_after: Optional[int] = None,
        ids: Iterable[str] = (),
        types: Iterable[str] = (),
        versions: Iterable[str] = ("last",),
    ) -> Tuple[List[Dict[str, Any]], int]:
        """TAXII 2.0 paging by position (`Range: items N-M`): the rows at offset..offset+limit
        in (date_added, id) order, and how many rows match in all (for Content-Range)."""
        where = ["collection = ?"]
        args: List[Any] = [collection]
        if added_after is not None:
            where.append("date_added > ?")
            args.append(added_after)
        for column, values in (("id", list(ids)), ("type", list(types))):
            if values:
                where.append(f"{column} IN ({','.join('?' * len(values))})")
                args += values
        where.append(version_clause(self.OBJECTS, list(versions), args, self.LATEST))
        sql = f"FROM {self.OBJECTS} o WHERE " + " AND ".join(where)
        counted = self._rows(f"SELECT COUNT(*) {sql}", args)  # [] when a value matches nothing
        total = int(counted[0][0]) if counted else 0
        if limit <= 0 or offset >= total:
            return [], total
        rows = self._rows(f"SELECT {ROW} {sql} ORDER BY date_added, id LIMIT ? OFFSET ?",
                          (*args, limit, offset))  # fmt: skip
        return [dict(zip(KEYS, r)) for r in rows], total

    def summary(self) -> Dict[str, Tuple[int, int]]:
        """collection id -> (objects stored, newest date_added in µs), for the status page."""
        sql = f"SELECT collection, COUNT(*), MAX(date_added) FROM {self.OBJECTS} GROUP BY 1"
        return {c: (n, last) for c, n, last in self._rows(sql, ())}

    def feed_state(self, collection: str) -> Tuple[int, int]:
        """(indicators stored, newest date_added in µs) of a collection: what a flat feed's
        ETag is checked against without rendering (served by the type index)."""
        sql = (f"SELECT COUNT(*), COALESCE(MAX(date_added), 0) FROM {self.OBJECTS} "
               "WHERE collection = ? AND type = 'indicator'")  # fmt: skip
        count, newest = self._rows(sql, (collection,))[0]
        return int(count), int(newest)

    def has_collection_objects(self, collection: str) -> bool:
        return bool(self._rows(f"SELECT 1 FROM {self.OBJECTS} WHERE collection = ? LIMIT 1",
                               (collection,)))  # fmt: skip


def version_clause(table: str, versions: List[str], args: List[Any], latest: str = "") -> str:
    """match[version]: last (default), first, all, or modified timestamps (for a query on
    `table` aliased `o`). `latest`: the column flagging each object's newest version, if the
    table has one (else the newest is found per row)."""
    if "all" in versions:
        return "(1 = 1)"
    parts = []
    stamps = [canonical(v) for v in versions if v not in ("first", "last")]
    if latest and "last" in versions:
        parts.append(f"o.{latest}")
    for wanted, agg in (("last", "MAX"), ("first", "MIN")):
        if wanted == "last" and latest:
            continue
        if wanted in versions:
            parts.append(
                f"modified = (SELECT {agg}(modified) FROM {table} o2 "
                "WHERE o2.collection = o.collection AND o2.id = o.id)"
            )
    if stamps:
        parts.append(f"modified IN ({','.join('?' * len(stamps))})")
        args += stamps
    return "(" + " OR ".join(parts) + ")"


def new_status_id() -> str:
    return str(uuid.uuid4())
