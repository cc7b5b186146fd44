from __future__ import annotations

import multiprocessing
import os
import sqlite3
import stat
import threading

from connectors.core.clock import FakeClock
from connectors.core.config import CacheSettings
from connectors.core.store import Cache, CacheEntry, LogRecord

S = CacheSettings()


def entry(key="file:" + "a" * 64, verdict="malicious", at=0.0):
    return CacheEntry(
        key=key, verdict=verdict, report={"kind": "file", "id": key[5:]}, stored_at=at
    )


def test_aliases_and_ttl(tmp_path):
    clock = FakeClock()
    c = Cache(tmp_path / "c.db", S, clock)
    c.put(entry(at=clock.now()), aliases=["file:" + "b" * 32, "file:" + "c" * 40])
    for key in ("file:" + "a" * 64, "file:" + "b" * 32, "file:" + "c" * 40):
        assert c.get(key).key == "file:" + "a" * 64
    c.put(CacheEntry("domain:x.com", "not_found", None, clock.now()))
    clock.advance(S.ttl_not_found + 1)
    assert c.get("domain:x.com") is None  # short negative caching
    assert c.get("file:" + "b" * 32) is not None
    clock.advance(S.ttl_malicious)
    assert c.get("file:" + "a" * 64) is None
    assert c.purge() == 2 and c.stats()["aliases"] == 0
    c.close()


def test_other_process_writes_seen_within_a_minute(tmp_path):
    clock = FakeClock()
    a = Cache(tmp_path / "c.db", S, clock)
    b = Cache(tmp_path / "c.db", S, clock)
    a.put(entry(verdict="harmless", at=clock.now()))
    assert b.get("file:" + "a" * 64).verdict == "harmless"
    a.put(entry(verdict="malicious", at=clock.now()))
    assert b.get("file:" + "a" * 64).verdict == "harmless"  # b's memory, for now
    clock.advance(61)
    assert b.get("file:" + "a" * 64).verdict == "malicious"


def test_get_many_returns_requested_keys(tmp_path):
    c = Cache(tmp_path / "c.db", CacheSettings(lru_size=0))
    items = [
        (entry(f"domain:d{i}.com", "harmless", c.clock.now()), [f"alias:{i}"]) for i in range(1200)
    ]
    c.put_many(items)
    got = c.get_many([f"alias:{i}" for i in range(0, 1200, 2)] + ["domain:none.com"])
    assert len(got) == 600 and got["alias:10"].key == "domain:d10.com"


def test_verdict_log_and_counters(tmp_path):
    clock = FakeClock()
    c = Cache(tmp_path / "c.db", S, clock)
    recs = [
        LogRecord(f"domain:{v}", "domain", v, verdict, 80, "webhook", clock.now())
        for v, verdict in (("a.com", "malicious"), ("b.com", "harmless"), ("c.com", "suspicious"))
    ]
    c.log(recs)
    rows = c.log_after(0, verdicts=["malicious", "suspicious"])
    assert [r.value for _, r in rows] == ["a.com", "c.com"]
    assert c.log_after(rows[-1][0]) == []
    assert c.logged_recently(["domain:a.com"], "webhook") == {"domain:a.com"}
    assert c.logged_recently(["domain:a.com"], "splunk") == set()
    other = Cache(tmp_path / "c.db", S, clock)  # another process: it knows only the log
    assert other.logged_recently(["domain:a.com", "domain:z.com"], "webhook") == {"domain:a.com"}
    clock.advance(S.log_interval)
    assert c.logged_recently(["domain:a.com"], "webhook") == set()
    assert other.logged_recently(["domain:a.com"], "webhook") == set()
    other.close()
    c.count_hit("cli", 3, 1)
    c.count_hit("cli", 1, 0)
    stats = c.stats()
    assert stats["hits_today"] == 4 and stats["misses_today"] == 1 and stats["hit_rate"] == 0.8
    assert stats["log_rows"] == 3


def test_private_file_and_corruption_recovery(tmp_path):
    path = tmp_path / "state" / "c.db"
    c = Cache(path, S)
    c.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    path.write_bytes(b"this is not a database" * 100)
    c = Cache(path, S)  # moved aside, fresh start
    c.put(entry(at=c.clock.now()))
    assert c.get("file:" + "a" * 64) is not None
    assert list(tmp_path.glob("state/c.db.corrupt-*"))


def _writer(path: str, n: int, worker: int) -> None:
    c = Cache(path, CacheSettings())
    for i in range(n):
        c.put(entry(f"domain:w{worker}-{i}.com", "harmless", c.clock.now()))
        c.log(
            [
                LogRecord(
                    f"domain:w{worker}-{i}.com", "domain", "x", "harmless", 0, "p", c.clock.now()
                )
            ]
        )
    c.close()


def test_concurrent_writers_from_processes(tmp_path):
    path = str(tmp_path / "c.db")
    Cache(path, S).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, 150, w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    stats = Cache(path, S).stats()
    assert stats["entries"] == 450 and stats["log_rows"] == 450


def test_verdict_log_drops_rows_older_than_its_keep(tmp_path):
    from connectors.core.store.sqlite import LOG_KEEP_DAYS

    clock = FakeClock(1_800_000_000.0)
    c = Cache(tmp_path / "c.db", S, clock)
    c.log([LogRecord(f"domain:{i}.com", "domain", f"{i}.com", "malicious", 80, "cli", clock.now())
           for i in range(5)])  # fmt: skip
    clock.advance(LOG_KEEP_DAYS * 86400 + 1)
    fresh = [LogRecord("domain:new.com", "domain", "new.com", "malicious", 80, "cli", clock.now())]
    c.log(fresh * 2)  # two rows added: up to four of the oldest go
    assert [r.value for _, r in c.log_after(0)] == ["4.com", "new.com", "new.com"]
    c.log(fresh)
    assert [r.value for _, r in c.log_after(0)] == ["new.com"] * 3  # recent rows always stay


def test_leases_one_holder_renewed_released_and_taken_over(tmp_path):
    clock = FakeClock()
    a = Cache(tmp_path / "c.db", S, clock)
    b = Cache(tmp_path / "c.db", S, clock)
    assert a.take_leases(["file:x", "file:y"], 30) == {"file:x", "file:y"}
    assert b.take_leases(["file:x", "file:z"], 30) == {"file:z"}
    assert b.lease_held("file:x") and not a.lease_held("file:x")  # a holds it itself
    clock.advance(20)
    a.renew_leases(["file:x"], 30)
    clock.advance(20)  # y's time is up, x was renewed
    assert b.take_leases(["file:x", "file:y"], 30) == {"file:y"}
    # The entry and the end of the lease come in one transaction.
    a.put_many([(entry("file:x", at=clock.now()), [])], release=["file:x"])
    assert not b.lease_held("file:x") and b.get("file:x") is not None
    a.renew_leases(["file:x"], 30)  # released: renewing never takes it back
    assert not b.lease_held("file:x")
    a.release_leases(["file:y"])  # not a's any more: b keeps it
    assert a.lease_held("file:y")


def test_rescan_claimed_once_per_period_across_processes(tmp_path):
    clock = FakeClock()
    a = Cache(tmp_path / "c.db", S, clock)
    b = Cache(tmp_path / "c.db", S, clock)
    assert a.claim_rescan("file:x", 30)
    assert not b.claim_rescan("file:x", 30) and not a.claim_rescan("file:x", 30)
    clock.advance(31 * 86400)
    assert b.claim_rescan("file:x", 30)
    b.forget_rescan("file:x")
    assert a.claim_rescan("file:x", 30)


def test_schema_upgrade_keeps_entries(tmp_path):
    import sqlite3

    path = tmp_path / "c.db"
    c = Cache(path, S)
    c.put(entry(at=c.clock.now()))
    c.db.execute("DROP TABLE leases")
    c.db.execute("PRAGMA user_version=2")  # a cache file written before leases existed
    c.close()
    c = Cache(path, S)
    assert c.get("file:" + "a" * 64) is not None
    assert c.take_leases(["file:q"], 30) == {"file:q"}
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 3


def test_a_lease_is_not_taken_on_a_value_answered_meanwhile(tmp_path):
    # The holder stored the answer and left between our cache miss and our take: we take no
    # lease (and so make no call); the entry is there to read.
    clock = FakeClock()
    a = Cache(tmp_path / "c.db", S, clock)
    b = Cache(tmp_path / "c.db", S, clock)
    assert a.take_leases(["file:" + "a" * 64], 30)
    a.put_many([(entry(at=clock.now()), ["file:" + "b" * 32])], release=["file:" + "a" * 64])
    assert b.take_leases(["file:" + "a" * 64, "file:" + "b" * 32, "file:z"], 30) == {"file:z"}
    clock.advance(S.ttl_malicious + 1)  # expired: asking again is right
    assert b.take_leases(["file:" + "a" * 64], 30) == {"file:" + "a" * 64}


def test_threads_opening_a_new_file_at_once_all_get_it(tmp_path):
    """The first opener switches a new file to WAL; the others wait for it instead of failing
    with "database is locked" (several lookups starting at once on a fresh state dir)."""
    from connectors.core.store.sqlite import SCHEMA, SCHEMA_VERSION, open_db

    def opener(path, start: threading.Barrier, errors: list) -> None:
        start.wait()
        try:
            db = open_db(path, SCHEMA, SCHEMA_VERSION)
            db.execute("INSERT INTO rescans VALUES (?, 0)", (str(threading.get_ident()),))
            db.close()
        except Exception as exc:  # noqa: BLE001 - any failure is the finding
            errors.append(exc)

    # A race: without the fix, 5 of 5 runs of these 40 rounds failed (the first failure ends one).
    for n in range(40):
        path = tmp_path / f"new-{n}.db"
        start = threading.Barrier(8)
        errors: list = []
        threads = [threading.Thread(target=opener, args=(path, start, errors)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors == []
        db = sqlite3.connect(path)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT COUNT(*) FROM rescans").fetchone()[0] == 8
        db.close()


def test_only_the_cache_checkpoints_less_often(tmp_path):
    """The cache's checkpoints (and their fsyncs) come every 16 MB of WAL; the webhook outbox
    and the quota ledger keep SQLite's default, so their durability window stays as it was."""
    from connectors.core.store.sqlite import CACHE_CHECKPOINT_PAGES, open_db

    c = Cache(tmp_path / "cache.db", S)
    other = open_db(tmp_path / "other.db", "CREATE TABLE t (x);", 1)
    try:
        assert c.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == CACHE_CHECKPOINT_PAGES
        plain = sqlite3.connect(":memory:")
        default = plain.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        plain.close()
        assert other.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == default
        assert default < CACHE_CHECKPOINT_PAGES
    finally:
        c.close()
        other.close()
