"""The Enricher's cache in a KV store collection, shared by every member of a search head
cluster. `_key` is the normalised indicator (the core's cache key, e.g. "domain:example.com");
file reports are saved under their MD5, SHA-1 and SHA-256 keys alike.

Only get_many/put_many go to the KV store; the verdict log and hit counters stay in the core's
local SQLite cache, which also takes over when the KV store stops answering.

A document may also carry the command's finished output columns (`columns`) with the settings
fingerprint they were rendered under (`columns_stamp`, the kept answers' fingerprint): a later
search with the same settings takes them as they are (`answers`) instead of decoding the report
and rendering it again. Documents without them, or with another stamp, take the full path and
get this search's columns attached (`attach`).

In a search head cluster another member may save a newer report for a key between this search's
read and its write. Every write (a new entry, or columns attached to what was read) first reads
the version of what the store holds now (`report_date`, VirusTotal's last analysis, then
`stored_at`) and leaves a newer document as it is: an older report is never put back. The KV
store has no conditional write, so a save that lands in the one round trip between that read
and the write can still be overwritten; the next refresh of the key settles it.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from connectors.core.store import Cache, CacheEntry

COLLECTION = "vtconnect_cache"
KEYS_PER_QUERY = 100  # keys in one $or: keeps each query small for splunkd
QUERIES_PER_BATCH = 100  # below limits.conf [kvstore] max_queries_per_batch (1000)
# What answers() needs of a document: without the stored report (about half of a document),
# which only the documents whose columns cannot be used are fetched again for.
ANSWER_FIELDS = "_key:1,verdict:1,columns:1,columns_stamp:1,expires_at:1"
VERSION_FIELDS = "_key:1,report_date:1,stored_at:1"  # what says which document is newer
DOCS_PER_SAVE = 1000  # limits.conf [kvstore] max_documents_per_batch_save default

log = logging.getLogger("vtconnect.vtlookup")


class KVStoreCache:
    """Duck-typed like connectors.core.store.Cache; everything not defined here is the local
    cache's."""

    def __init__(
        self, service: Any, app: str, local: Cache, clock: Any, collection: str = COLLECTION
    ) -> None:
        self._service = service
        self._clock = clock
        self._app = app
        self._local = local
        self._path = f"storage/collections/data/{collection}/"
        self.failed: Optional[str] = None  # why the KV store is no longer used, if it failed
        self.stamp = ""  # fingerprint of the settings the command renders columns under
        # Keys answers() found no live document for, so that the get_many that follows in the
        # same batch does not ask for them again.
        self._prefetched: Dict[str, None] = {}
        # Documents read or saved during the current batch, by key, so that attach() can add
        # columns to them.
        self._docs: Dict[str, Dict[str, Any]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._local, name)

    def _post(self, endpoint: str, body: Any) -> Any:
        resp = self._service.post(
            self._path + endpoint,
            owner="nobody",
            app=self._app,
            headers=[("Content-Type", "application/json")],
            body=json.dumps(body),
        )
        return json.loads(resp.body.read())

    def _fail(self, exc: BaseException) -> None:
        self.failed = f"{type(exc).__name__}: {exc}"
        log.warning("KV store cache unavailable, using the local cache: %s", self.failed)

    def _find(self, keys: List[str], fields: str = "") -> Iterable[Dict[str, Any]]:
        for queries in _batches(_queries(keys, fields), QUERIES_PER_BATCH):
            for docs in self._post("batch_find", queries):
                for doc in docs:
                    if isinstance(doc, dict):
                        yield doc

    def answers(self, keys: Iterable[str]) -> Dict[str, Tuple[str, str, float]]:
        """key -> (verdict, columns, expires_at) for live documents carrying columns rendered
        under `stamp`. Only those fields are read; the next get_many reads the other live
        documents whole, and knows which keys have none."""
        wanted = list(keys)
        self._prefetched = {}
        self._docs = {}
        if self.failed or not self.stamp or not wanted:
            return {}
        now = self._clock.now()
        found: Dict[str, Tuple[str, str, float]] = {}
        prefetched: Dict[str, None] = dict.fromkeys(wanted)
        try:
            for doc in self._find(wanted, ANSWER_FIELDS):
                key, columns = doc.get("_key"), doc.get("columns")
                if key not in prefetched:
                    continue
                try:
                    expires_at = float(doc["expires_at"])
                except (KeyError, TypeError, ValueError):
                    continue  # malformed: a miss
                if expires_at <= now:
                    continue
                if doc.get("columns_stamp") == self.stamp and isinstance(columns, str):
                    found[key] = (str(doc.get("verdict")), columns, expires_at)
                del prefetched[key]  # found, or for get_many to read whole
        except Exception as exc:  # the full path asks again and falls back
            log.warning("KV store columns not read: %s", exc)
            return {}
        self._prefetched = prefetched
        return found

    def get_many(self, keys: Iterable[str]) -> Dict[str, CacheEntry]:
        wanted = list(keys)
        if self.failed or not wanted:
            return self._local.get_many(wanted)
        now = self._clock.now()
        found: Dict[str, CacheEntry] = {}
        prefetched, self._prefetched = self._prefetched, {}
        ask = [k for k in wanted if k not in prefetched]
        try:
            for doc in self._find(ask) if ask else ():
                entry = _entry(doc)
                if entry is not None and entry.expires_at > now:
                    found[entry.key] = entry
                    self._docs[entry.key] = doc
        except Exception as exc:  # any splunkd or transport failure: fall back, never fail
            self._fail(exc)
            return self._local.get_many(wanted)
        return found

    def attach(self, columns: Dict[str, str]) -> None:
        """Save the command's columns (cache key -> encoded columns, as a later cache hit
        shows them) into the documents read or saved during this batch."""
        docs, self._docs = self._docs, {}
        if self.failed or not self.stamp:
            return
        changed: List[Dict[str, Any]] = []
        for key, cols in columns.items():
            doc = docs.get(key)
            if doc and (doc.get("columns_stamp") != self.stamp or doc.get("columns") != cols):
                changed.append({**doc, "columns": cols, "columns_stamp": self.stamp})
        try:
            # Columns rendered from what was read go only onto that same version: not onto a
            # newer one, and not back into a key that was removed meanwhile.
            unchanged = self._not_older(changed, missing_ok=False) if changed else []
            for batch in _batches(unchanged, DOCS_PER_SAVE):
                self._post("batch_save", batch)
        except Exception as exc:  # only the faster path of later searches is lost
            log.warning("KV store columns not saved: %s", exc)

    def _not_older(self, docs: List[Dict[str, Any]], missing_ok: bool) -> List[Dict[str, Any]]:
        """The documents the store holds nothing newer for now; `missing_ok`: also those whose
        key it does not hold."""
        current = {d.get("_key"): d for d in self._find([d["_key"] for d in docs], VERSION_FIELDS)}
        out = []
        for doc in docs:
            now = current.get(doc["_key"])
            if now is None and not missing_ok:
                continue
            if now is not None and _newer(now, doc):
                log.info("KV store holds a newer report for %s: kept", doc["_key"])
                continue
            out.append(doc)
        return out

    def put_many(
        self, items: Sequence[Tuple[CacheEntry, Iterable[str]]], release: Iterable[str] = ()
    ) -> None:
        """`release`: this host's leases on the values (local cache), dropped once the entries
        are saved, so that another search waiting on one finds the entry."""
        if self.failed:
            self._local.put_many(items, release=release)
            return
        docs: List[Dict[str, Any]] = []
        for entry, aliases in items:
            report = json.dumps(entry.report, separators=(",", ":")) if entry.report else ""
            kind, _, value = entry.key.partition(":")
            for key in sorted(set(aliases) | {entry.key}):
                docs.append(
                    {
                        "_key": key,
                        "kind": kind,
                        "value": value,
                        "verdict": entry.verdict,
                        "report": report,
                        "report_date": _report_date(entry.report),
                        "stored_at": entry.stored_at,
                        "expires_at": entry.expires_at,
                    }
                )
                # Each alias gets its own columns when asked by it: vt_kind says md5 or sha256.
                self._docs[key] = docs[-1]
        try:
            docs = self._not_older(docs, missing_ok=True) if docs else docs
            for batch in _batches(docs, DOCS_PER_SAVE):
                self._post("batch_save", batch)
        except Exception as exc:
            self._fail(exc)
            self._local.put_many(items, release=release)
            return
        self._local.release_leases(release)


def _queries(keys: List[str], fields: str = "") -> List[Dict[str, Any]]:
    """batch_find queries; `fields`: splunkd's projection (name:1,... includes only those)."""
    extra = {"fields": fields} if fields else {}
    return [
        {"query": {"$or": [{"_key": k} for k in keys[i : i + KEYS_PER_QUERY]]}, **extra}
        for i in range(0, len(keys), KEYS_PER_QUERY)
    ]


def _report_date(report: Optional[Dict[str, Any]]) -> int:
    """VirusTotal's last analysis of the object (Report.last_analysis), 0 when unknown."""
    date = (report or {}).get("last_analysis") or 0
    return int(date) if isinstance(date, (int, float)) and not isinstance(date, bool) else 0


def _newer(stored: Dict[str, Any], ours: Dict[str, Any]) -> bool:
    """Whether the stored document holds a newer version than ours: the later last analysis
    decides (clock-independent across cluster members), then the later stored_at."""
    try:
        stored_at, our_at = float(stored.get("stored_at") or 0), float(ours.get("stored_at") or 0)
    except (TypeError, ValueError):
        return False  # a malformed stored document is no reason to keep it
    a, b = stored.get("report_date"), ours.get("report_date")
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a and b and a != b:
        return a > b
    return stored_at > our_at


def _batches(items: List[Any], size: int) -> Iterable[List[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _entry(doc: Any) -> Optional[CacheEntry]:
    """A KV document as a cache entry; anything malformed counts as a miss."""
    try:
        raw = doc.get("report") or ""
        report = json.loads(raw) if raw else None
        if not isinstance(report, dict) and doc["verdict"] != "not_found":
            return None
        return CacheEntry(
            key=str(doc["_key"]),
            verdict=str(doc["verdict"]),
            report=report if isinstance(report, dict) else None,
            stored_at=float(doc["stored_at"]),
            expires_at=float(doc["expires_at"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
