"""The core store's interface: what the enricher, the flights, the CLI, the TAXII publisher,
the webhook receiver and the status page use, and the in-process memory both backends share.

A store holds cache entries (one per canonical key) with their aliases, the verdict log (rows
numbered in commit order: a publisher follows it with `log_after`), hit counters, in-flight
lookup leases (one asker per value; the others wait for its entry) and reanalysis records.
Times are epoch seconds from the store's clock.
"""

from __future__ import annotations

import os
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

from .. import codec
from ..clock import Clock
from ..config import CacheSettings

MEMORY_SECONDS = 60.0
LOG_KEEP_DAYS = 30  # verdict log rows older than this are dropped (publishers read it sooner)
RESCAN_KEEP_DAYS = 366  # `cache purge` drops reanalysis records older than this


@dataclass
class CacheEntry:
    key: str  # canonical key: file:<sha256>, url:<vt url id>, domain:<name>, ip:<address>
    verdict: str
    report: Optional[Dict[str, Any]]  # Report.to_dict(); None for not_found
    stored_at: float
    expires_at: float = 0.0  # 0: from the TTL for the verdict


@dataclass
class LogRecord:
    key: str
    kind: str
    value: str
    verdict: str
    score: int
    connector: str
    at: float
    reason: str = ""


class CacheStore(ABC):
    """One backend's cache, verdict log, leases and rescans. The same columns in every backend,
    so `vtconnect db copy` moves rows table by table: TABLES maps each table's name in the
    SQLite file (the logical name) to its name in this backend, in an order that copies
    cleanly."""

    TABLES: Dict[str, str] = {
        name: name for name in ("entries", "aliases", "verdict_log", "counters", "leases",
                                "rescans")
    }  # fmt: skip

    def __init__(self, settings: CacheSettings, clock: Optional[Clock] = None) -> None:
        self.settings = settings
        self.clock = clock or Clock()
        self._memory: Dict[str, Tuple[float, CacheEntry]] = {}
        self._logged: Dict[Tuple[str, str], float] = {}
        # Names this store object as a lease holder: two Enrichers in one process are two holders.
        self.holder = f"{os.getpid()}:{secrets.token_hex(4)}"

    @abstractmethod
    def close(self) -> None: ...

    def after_copy(self) -> None:
        """Called by `vtconnect db copy` once rows were copied in with their own ids: the next
        verdict-log row is numbered after the copied ones. Nothing to do for SQLite."""
        return None

    # -- entries ---------------------------------------------------------------------------
    def get(self, key: str) -> Optional[CacheEntry]:
        return self.get_many([key]).get(key)

    @abstractmethod
    def get_many(self, keys: Iterable[str]) -> Dict[str, CacheEntry]:
        """Live entries, keyed by the requested key (which may be an alias)."""

    def put(self, entry: CacheEntry, aliases: Iterable[str] = ()) -> None:
        self.put_many([(entry, aliases)])

    @abstractmethod
    def put_many(
        self, items: Iterable[Tuple[CacheEntry, Iterable[str]]], release: Iterable[str] = ()
    ) -> None:
        """Store entries; `release` names leases of this holder to drop in the same transaction,
        so an asker waiting on one never sees the lease gone before the entry is there."""

    @abstractmethod
    def purge(self, expired_only: bool = True) -> int:
        """Drop expired entries (all of them with expired_only=False), leases whose time is
        up and old reanalysis records; how many entries were dropped."""

    # Steps both backends share around their own SQL.
    def _from_memory(
        self, keys: Iterable[str], now: float
    ) -> Tuple[Dict[str, CacheEntry], List[str]]:
        """Live entries this process remembers, and the keys the database must answer."""
        out: Dict[str, CacheEntry] = {}
        missing: List[str] = []
        memory = self._memory
        for key in keys:
            hit = memory.get(key)
            if hit is not None and hit[0] > now and hit[1].expires_at > now:
                out[key] = hit[1]
            else:
                missing.append(key)
        return out, missing

    def _found(
        self, out: Dict[str, CacheEntry], rows: Iterable[Tuple[Any, ...]], now: float
    ) -> None:
        """Entries from (alias, key, verdict, report, stored_at, expires_at) rows, remembered."""
        for alias, key, verdict, report, stored_at, expires_at in rows:
            try:
                parsed = codec.loads(report) if report else None
            except ValueError:
                continue  # a damaged row is a miss, never a crash
            entry = CacheEntry(key, verdict, parsed, stored_at, expires_at)
            out[alias] = entry
            self._remember(alias, entry, now)

    def _prepared(
        self, items: Iterable[Tuple[CacheEntry, Iterable[str]]], now: float
    ) -> Iterable[Tuple[CacheEntry, Optional[str], Set[str]]]:
        """Each entry to store with its report encoded and its aliases (its key among them);
        entries get their expiry from the TTLs and are remembered under every alias."""
        for entry, aliases in items:
            if not entry.expires_at:
                entry.expires_at = entry.stored_at + self.settings.ttl_for(entry.verdict)
            names = {entry.key, *aliases}
            for alias in names:
                self._remember(alias, entry, now)
            yield entry, codec.dumps(entry.report) if entry.report else None, names

    def _logged_here(
        self, keys: Iterable[str], connector: str
    ) -> Tuple[float, Set[str], List[str]]:
        """logged_recently's first step: (since when, the keys this process logged since then,
        the keys the database must answer)."""
        since = self.clock.now() - self.settings.log_interval
        wanted = list(dict.fromkeys(keys))
        done = {k for k in wanted if self._logged.get((k, connector), since) > since}
        return since, done, [k for k in wanted if k not in done]

    def _log_rows(self, records: Iterable[LogRecord]) -> List[Tuple[Any, ...]]:
        """Verdict-log rows (key, kind, value, verdict, score, connector, at, reason), each
        remembered as logged for logged_recently."""
        rows = [
            (r.key, r.kind, r.value, r.verdict, int(r.score), r.connector, float(r.at), r.reason)
            for r in records
        ]
        for r in rows:
            self._logged[(r[0], r[5])] = r[6]
        return rows

    def _remember(self, key: str, entry: CacheEntry, now: float) -> None:
        memory = self._memory
        if len(memory) >= self.settings.lru_size > 0:
            # Evict the oldest tenth at once: cheaper than per-hit LRU bookkeeping.
            for old in list(memory)[: max(1, len(memory) // 10)]:
                del memory[old]
        if self.settings.lru_size > 0:
            memory[key] = (now + MEMORY_SECONDS, entry)

    # -- leases: one asker per value, the others wait for its entry --------------------------
    @abstractmethod
    def canonical(self, keys: Iterable[str]) -> Dict[str, str]:
        """The canonical key of each key whose alias is known (also after its entry expired:
        an MD5 names the same file for ever), so concurrent askers by other names share."""

    @abstractmethod
    def take_leases(self, keys: Iterable[str], seconds: float) -> Set[str]:
        """The keys this holder now leases (for `seconds`); the rest are held by a live asker
        or answered already (an entry stored since the caller looked). A lease whose time is
        up, or whose holder process (on this host) has died, is taken over."""

    @abstractmethod
    def lease_held(self, key: str) -> bool:
        """True while another live holder leases the key."""

    @abstractmethod
    def leases_held(self, keys: Iterable[str]) -> Set[str]:
        """The keys another live holder leases (lease_held for many keys in one query)."""

    @abstractmethod
    def renew_leases(self, keys: Iterable[str], seconds: float) -> None:
        """Extend this holder's leases still held (never takes one back once released)."""

    @abstractmethod
    def release_leases(self, keys: Iterable[str]) -> None: ...

    @abstractmethod
    def claim_rescan(self, key: str, every_days: float) -> bool:
        """True when no reanalysis of `key` was asked within `every_days` (by any process
        sharing the store); the claim is recorded at once, so one asks and the others do not."""

    @abstractmethod
    def forget_rescan(self, key: str) -> None:
        """The claimed reanalysis was not requested after all (no budget)."""

    # -- verdict log and counters ------------------------------------------------------------
    @abstractmethod
    def logged_recently(self, keys: Iterable[str], connector: str) -> Set[str]:
        """The keys logged for this connector within log_interval, by this process or any
        other: a Splunk search is a process of its own, and each would log every hit again."""

    @abstractmethod
    def log(self, records: Iterable[LogRecord]) -> None: ...

    @abstractmethod
    def log_after(
        self, rowid: int, limit: int = 1000, verdicts: Optional[Iterable[str]] = None
    ) -> List[Tuple[int, LogRecord]]:
        """Log rows after a cursor, oldest first: how publishers follow the log. Row numbers
        are visible in order: a row numbered below one already seen never appears later."""

    @abstractmethod
    def recent(self, limit: int = 20, verdicts: Iterable[str] = ()) -> List[LogRecord]:
        """The newest verdict-log rows (of these verdicts, when given), newest first."""

    @abstractmethod
    def count_hit(self, connector: str, hits: int, misses: int) -> None: ...

    @abstractmethod
    def stats(self) -> Dict[str, Any]:
        """entries, by_verdict, expired, aliases, log_rows, hits/misses today and in total,
        hit_rate, db_bytes, memory_entries."""


def alive(pid: int) -> bool:
    """Whether a process of this host still runs (a lease holder killed mid-call has not)."""
    if pid <= 0:
        return False
    if os.name == "nt":  # os.kill(pid, 0) would end the process there; trust the lease time
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, owned by someone else
    return True
