"""The core store in SQLite (the embedded default): the verdict cache and the verdict log in
one file (WAL) shared by every process on the host, with a small in-process memory in front.

Aliases map every name of an object to one entry (file:<md5> and file:<sha1> -> file:<sha256>).
The in-process memory trusts an entry for at most MEMORY_SECONDS, so a write by another process
(a purge, a fresher answer) is seen within a minute.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple, TypeVar, Union

from ..clock import Clock
from ..config import CacheSettings
from .base import LOG_KEEP_DAYS, RESCAN_KEEP_DAYS, CacheEntry, CacheStore, LogRecord
from .base import alive as _alive

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3  # 2: verdict_log_key index; 3: leases and rescans
# The cache checkpoints every 16 MB of WAL instead of 4 MB: the checkpoint's fsyncs ran inside a
# commit on the event loop, ~40 us per cold lookup stored (bench/core.py's flow). Entries can be
# fetched again; the outbox and the ledger keep SQLite's default.
CACHE_CHECKPOINT_PAGES = 4000
CHUNK = 500  # keys per SELECT ... IN (...): below SQLite's variable limit everywhere
T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY, verdict TEXT NOT NULL, report TEXT,
    stored_at REAL NOT NULL, expires_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS entries_expiry ON entries(expires_at);
CREATE TABLE IF NOT EXISTS aliases (alias TEXT PRIMARY KEY, key TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS aliases_key ON aliases(key);
CREATE TABLE IF NOT EXISTS verdict_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, kind TEXT NOT NULL,
    value TEXT NOT NULL, verdict TEXT NOT NULL, score INTEGER NOT NULL,
    connector TEXT NOT NULL, at REAL NOT NULL, reason TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS verdict_log_verdict ON verdict_log(verdict, id);
CREATE INDEX IF NOT EXISTS verdict_log_key ON verdict_log(key, connector, at);
CREATE TABLE IF NOT EXISTS counters (
    day TEXT NOT NULL, connector TEXT NOT NULL, hits INTEGER NOT NULL, misses INTEGER NOT NULL,
    PRIMARY KEY (day, connector));
CREATE TABLE IF NOT EXISTS leases (
    key TEXT PRIMARY KEY, holder TEXT NOT NULL, pid INTEGER NOT NULL, until REAL NOT NULL);
CREATE TABLE IF NOT EXISTS rescans (key TEXT PRIMARY KEY, at REAL NOT NULL);
"""


def open_db(
    path: Union[str, Path], schema: str, version: int, checkpoint_pages: int = 0
) -> sqlite3.Connection:
    """Open (or create) a private SQLite file in WAL mode; a corrupt file is moved aside.
    `checkpoint_pages`: WAL pages between checkpoints (SQLite's default: 1000)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    for attempt in (1, 2):
        try:
            db = sqlite3.connect(
                str(path), timeout=5.0, isolation_level=None, check_same_thread=False
            )
            db.execute("PRAGMA busy_timeout=5000")
            current = db.execute("PRAGMA user_version").fetchone()[0]
            _use_wal(db)
            db.execute("PRAGMA synchronous=NORMAL")
            if checkpoint_pages:
                db.execute(f"PRAGMA wal_autocheckpoint={int(checkpoint_pages)}")
            if current != version:
                db.executescript(schema)
                db.execute(f"PRAGMA user_version={int(version)}")
            os.chmod(path, 0o600)
            return db
        except sqlite3.DatabaseError as exc:
            if attempt == 2 or isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise
            aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
            log.warning("%s is unreadable (%s); moved to %s, starting fresh", path, exc, aside)
            path.rename(aside)
            for suffix in ("-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)
    raise AssertionError("unreachable")


def _use_wal(db: sqlite3.Connection, patience: float = 5.0) -> None:
    """Switch a new file to WAL. Setting the mode does not wait for a lock: processes (or
    threads) opening a new file at once would fail with "database is locked" while the first
    one switches it, so the others wait until it is done."""
    give_up = time.monotonic() + patience
    while True:
        try:
            mode = db.execute("PRAGMA journal_mode").fetchone()[0]
            if mode != "wal":
                mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > give_up:
                raise
        else:
            if mode == "wal":
                return
            if time.monotonic() > give_up:  # a file that cannot be WAL (in memory, odd VFS)
                raise sqlite3.OperationalError(f"{mode} journal: WAL mode is not possible here")
        time.sleep(0.02)


def write(db: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run fn in one short write transaction; retry a few times when other processes hold it."""
    for attempt in range(5):
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = fn(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return result
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc) or attempt == 4:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


class SQLiteCache(CacheStore):
    def __init__(
        self, path: Union[str, Path], settings: CacheSettings, clock: Optional[Clock] = None
    ) -> None:
        super().__init__(settings, clock)
        self.path = Path(path)
        self.db = open_db(self.path, SCHEMA, SCHEMA_VERSION, CACHE_CHECKPOINT_PAGES)

    def close(self) -> None:
        self.db.close()

    # -- entries ---------------------------------------------------------------------------
    def get_many(self, keys: Iterable[str]) -> Dict[str, CacheEntry]:
        """Live entries, keyed by the requested key (which may be an alias)."""
        now = self.clock.now()
        out, missing = self._from_memory(keys, now)
        for i in range(0, len(missing), CHUNK):
            part = missing[i : i + CHUNK]
            rows = self.db.execute(
                "SELECT a.alias, e.key, e.verdict, e.report, e.stored_at, e.expires_at "
                "FROM aliases a JOIN entries e ON e.key = a.key "
                f"WHERE a.alias IN ({','.join('?' * len(part))}) AND e.expires_at > ?",
                (*part, now),
            ).fetchall()
            self._found(out, rows, now)
        return out

    def put_many(
        self, items: Iterable[Tuple[CacheEntry, Iterable[str]]], release: Iterable[str] = ()
    ) -> None:
        """Store entries; `release` names leases of this holder to drop in the same transaction,
        so an asker waiting on one never sees the lease gone before the entry is there."""
        now = self.clock.now()
        released = [(k, self.holder) for k in release]
        rows, alias_rows = [], []
        for entry, report, names in self._prepared(items, now):
            rows.append((entry.key, entry.verdict, report, entry.stored_at, entry.expires_at))
            alias_rows.extend((alias, entry.key) for alias in names)
        if not rows and not released:
            return

        def txn(db: sqlite3.Connection) -> None:
            db.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?)", rows)
            db.executemany("INSERT OR REPLACE INTO aliases VALUES (?, ?)", alias_rows)
            if released:
                db.executemany("DELETE FROM leases WHERE key = ? AND holder = ?", released)

        write(self.db, txn)

    def purge(self, expired_only: bool = True) -> int:
        now = self.clock.now()
        self._memory.clear()

        def txn(db: sqlite3.Connection) -> int:
            # Leases whose time is up; reanalysis records older than any sensible period.
            db.execute("DELETE FROM leases WHERE until <= ?", (now,))
            db.execute("DELETE FROM rescans WHERE at < ?", (now - RESCAN_KEEP_DAYS * 86400,))
            if expired_only:
                n = db.execute("DELETE FROM entries WHERE expires_at <= ?", (now,)).rowcount
            else:
                n = db.execute("DELETE FROM entries").rowcount
            db.execute("DELETE FROM aliases WHERE key NOT IN (SELECT key FROM entries)")
            return n

        return write(self.db, txn)

    # -- leases: one asker per value on the host, the others wait for its entry ------------------
    def canonical(self, keys: Iterable[str]) -> Dict[str, str]:
        """The canonical key of each key whose alias is known (also after its entry expired:
        an MD5 names the same file for ever), so concurrent askers by other names share."""
        wanted = list(dict.fromkeys(keys))
        out: Dict[str, str] = {}
        for i in range(0, len(wanted), CHUNK):
            part = wanted[i : i + CHUNK]
            rows = self.db.execute(
                f"SELECT alias, key FROM aliases WHERE alias IN ({','.join('?' * len(part))})",
                part,
            )
            out.update((alias, key) for alias, key in rows if alias != key)
        return out

    def take_leases(self, keys: Iterable[str], seconds: float) -> Set[str]:
        """The keys this holder now leases (for `seconds`); the rest are held by a live asker
        or answered already (an entry stored since the caller looked). A lease whose time is
        up, or whose holder process has died, is taken over."""
        now = self.clock.now()
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return set()

        def txn(db: sqlite3.Connection) -> Set[str]:
            taken: Set[str] = set()
            for i in range(0, len(wanted), CHUNK):
                part = wanted[i : i + CHUNK]
                held = {
                    key: (holder, pid, until)
                    for key, holder, pid, until in db.execute(
                        "SELECT key, holder, pid, until FROM leases "
                        f"WHERE key IN ({','.join('?' * len(part))})",
                        part,
                    )
                }
                answered = {
                    row[0]
                    for row in db.execute(
                        "SELECT a.alias FROM aliases a JOIN entries e ON e.key = a.key "
                        f"WHERE a.alias IN ({','.join('?' * len(part))}) AND e.expires_at > ?",
                        (*part, now),
                    )
                }
                free = [
                    k
                    for k in part
                    if k not in answered
                    and (
                        k not in held
                        or held[k][0] == self.holder
                        or held[k][2] <= now
                        or not _alive(held[k][1])
                    )
                ]
                db.executemany(
                    "INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?)",
                    [(k, self.holder, os.getpid(), now + seconds) for k in free],
                )
                taken.update(free)
            return taken

        return write(self.db, txn)

    def lease_held(self, key: str) -> bool:
        """True while another live holder leases the key."""
        row = self.db.execute(
            "SELECT holder, pid, until FROM leases WHERE key = ?", (key,)
        ).fetchone()
        return (
            row is not None
            and row[0] != self.holder
            and row[2] > self.clock.now()
            and _alive(row[1])
        )

    def leases_held(self, keys: Iterable[str]) -> Set[str]:
        now = self.clock.now()
        wanted = list(dict.fromkeys(keys))
        out: Set[str] = set()
        for i in range(0, len(wanted), CHUNK):
            part = wanted[i : i + CHUNK]
            rows = self.db.execute(
                "SELECT key, holder, pid, until FROM leases "
                f"WHERE key IN ({','.join('?' * len(part))})",
                part,
            )
            out.update(
                key
                for key, holder, pid, until in rows
                if holder != self.holder and until > now and _alive(pid)
            )
        return out

    def renew_leases(self, keys: Iterable[str], seconds: float) -> None:
        """Extend this holder's leases still held (never takes one back once released)."""
        until = self.clock.now() + seconds
        rows = [(until, k, self.holder) for k in dict.fromkeys(keys)]
        if rows:
            write(
                self.db,
                lambda db: db.executemany(
                    "UPDATE leases SET until = ? WHERE key = ? AND holder = ?", rows
                ),
            )

    def release_leases(self, keys: Iterable[str]) -> None:
        rows = [(k, self.holder) for k in dict.fromkeys(keys)]
        if rows:
            write(
                self.db,
                lambda db: db.executemany("DELETE FROM leases WHERE key = ? AND holder = ?", rows),
            )

    def claim_rescan(self, key: str, every_days: float) -> bool:
        """True when no reanalysis of `key` was asked on this host within `every_days`; the
        claim is recorded at once, so one process asks and the others do not."""
        now = self.clock.now()

        def txn(db: sqlite3.Connection) -> bool:
            row = db.execute("SELECT at FROM rescans WHERE key = ?", (key,)).fetchone()
            if row is not None and row[0] > now - every_days * 86400:
                return False
            db.execute("INSERT OR REPLACE INTO rescans VALUES (?, ?)", (key, now))
            return True

        return write(self.db, txn)

    def forget_rescan(self, key: str) -> None:
        """The claimed reanalysis was not requested after all (no budget)."""
        write(self.db, lambda db: db.execute("DELETE FROM rescans WHERE key = ?", (key,)))

    # -- verdict log and counters ------------------------------------------------------------
    def logged_recently(self, keys: Iterable[str], connector: str) -> Set[str]:
        """The keys logged for this connector within log_interval, by this process or any
        other: a Splunk search is a process of its own, and each would log every hit again."""
        since, done, rest = self._logged_here(keys, connector)
        for i in range(0, len(rest), CHUNK):
            part = rest[i : i + CHUNK]
            rows = self.db.execute(
                "SELECT DISTINCT key FROM verdict_log WHERE connector = ? AND at > ? AND key IN "
                f"({','.join('?' * len(part))})",
                [connector, since, *part],
            )
            done.update(r[0] for r in rows)
        return done

    def log(self, records: Iterable[LogRecord]) -> None:
        rows = self._log_rows(records)
        if not rows:
            return
        too_old = self.clock.now() - LOG_KEEP_DAYS * 86400

        def txn(db: sqlite3.Connection) -> None:
            db.executemany(
                "INSERT INTO verdict_log (key, kind, value, verdict, score, connector, at, reason) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            # The oldest rows first, twice as many as were added: the log stays bounded and no
            # call scans it all.
            db.execute(
                "DELETE FROM verdict_log WHERE id IN "
                "(SELECT id FROM verdict_log ORDER BY id LIMIT ?) AND at < ?",
                (2 * len(rows), too_old),
            )

        write(self.db, txn)

    def log_after(
        self, rowid: int, limit: int = 1000, verdicts: Optional[Iterable[str]] = None
    ) -> List[Tuple[int, LogRecord]]:
        """Log rows after a cursor, oldest first: how publishers follow the log."""
        sql = (
            "SELECT id, key, kind, value, verdict, score, connector, at, reason "
            "FROM verdict_log WHERE id > ?"
        )
        args: List[Any] = [int(rowid)]
        if verdicts is not None:
            wanted = list(verdicts)
            sql += f" AND verdict IN ({','.join('?' * len(wanted))})"
            args += wanted
        sql += " ORDER BY id LIMIT ?"
        args.append(int(limit))
        return [(row[0], LogRecord(*row[1:])) for row in self.db.execute(sql, args)]

    def recent(self, limit: int = 20, verdicts: Iterable[str] = ()) -> List[LogRecord]:
        """The newest verdict-log rows (of these verdicts, when given), newest first."""
        wanted = list(verdicts)
        sql = "SELECT key, kind, value, verdict, score, connector, at, reason FROM verdict_log"
        if wanted:
            sql += f" WHERE verdict IN ({','.join('?' * len(wanted))})"
        sql += " ORDER BY id DESC LIMIT ?"
        return [LogRecord(*row) for row in self.db.execute(sql, [*wanted, int(limit)])]

    def count_hit(self, connector: str, hits: int, misses: int) -> None:
        if not hits and not misses:
            return
        day = time.strftime("%Y-%m-%d", time.gmtime(self.clock.now()))
        write(
            self.db,
            lambda db: db.execute(
                "INSERT INTO counters VALUES (?, ?, ?, ?) ON CONFLICT(day, connector) DO UPDATE "
                "SET hits = hits + excluded.hits, misses = misses + excluded.misses",
                (day, connector, hits, misses),
            ),
        )

    def stats(self) -> Dict[str, Any]:
        now = self.clock.now()
        q = self.db.execute
        by_verdict = dict(
            q(
                "SELECT verdict, COUNT(*) FROM entries WHERE expires_at > ? GROUP BY verdict",
                (now,),
            ).fetchall()
        )
        day = time.strftime("%Y-%m-%d", time.gmtime(now))
        today = q(
            "SELECT COALESCE(SUM(hits), 0), COALESCE(SUM(misses), 0) FROM counters WHERE day = ?",
            (day,),
        ).fetchone()
        total = q(
            "SELECT COALESCE(SUM(hits), 0), COALESCE(SUM(misses), 0) FROM counters"
        ).fetchone()
        looked = total[0] + total[1]
        return {
            "entries": sum(by_verdict.values()),
            "by_verdict": by_verdict,
            "expired": q("SELECT COUNT(*) FROM entries WHERE expires_at <= ?", (now,)).fetchone()[
                0
            ],
            "aliases": q("SELECT COUNT(*) FROM aliases").fetchone()[0],
            "log_rows": q("SELECT COUNT(*) FROM verdict_log").fetchone()[0],
            "hits_today": today[0],
            "misses_today": today[1],
            "hits_total": total[0],
            "misses_total": total[1],
            "hit_rate": round(total[0] / looked, 3) if looked else 0.0,
            "db_bytes": self.path.stat().st_size if self.path.exists() else 0,
            "memory_entries": len(self._memory),
        }


Cache = SQLiteCache  # the name callers opened the SQLite store by
