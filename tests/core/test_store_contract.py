"""One contract for both core stores (SQLite and a real PostgreSQL, tests/pg.py): entries with
aliases and TTLs, the in-process memory, the verdict log followed by cursor, hit counters,
leases (one holder per value; renewed, released with the entry, taken over when expired or
when the holder died) and reanalysis claims. Two store objects on one target stand for two
processes (or, on PostgreSQL, two hosts)."""

from __future__ import annotations

import multiprocessing
import random
import subprocess
import sys
import threading
import time
from typing import List

import pytest

from connectors.core.clock import FakeClock
from connectors.core.config import CacheSettings
from connectors.core.store import CacheEntry, CacheStore, LogRecord, open_cache
from connectors.core.store.base import LOG_KEEP_DAYS

S = CacheSettings()
A64 = "file:" + "a" * 64


@pytest.fixture(params=["sqlite", "postgres"])
def target(request, tmp_path) -> str:
    if request.param == "postgres":
        return request.getfixturevalue("pg_database")
    return str(tmp_path / "cache.db")


@pytest.fixture
def opened(target):
    stores: List[CacheStore] = []

    def open_(settings: CacheSettings = S, clock=None) -> CacheStore:
        stores.append(open_cache(target, settings, clock))
        return stores[-1]

    yield open_
    for s in stores:
        s.close()


def entry(key=A64, verdict="malicious", at=0.0):
    return CacheEntry(
        key=key, verdict=verdict, report={"kind": "file", "id": key[5:]}, stored_at=at
    )


def record(value, verdict="malicious", connector="cli", at=None):
    at = time.time() if at is None else at  # an old row would be dropped as soon as it is in
    return LogRecord(f"domain:{value}", "domain", value, verdict, 80, connector, at)


def test_aliases_and_ttl(opened):
    clock = FakeClock()
    c = opened(clock=clock)
    c.put(entry(at=clock.now()), aliases=["file:" + "b" * 32, "file:" + "c" * 40])
    for key in (A64, "file:" + "b" * 32, "file:" + "c" * 40):
        got = c.get(key)
        assert got.key == A64 and got.report == {"kind": "file", "id": "a" * 64}
    c.put(CacheEntry("domain:x.com", "not_found", None, clock.now()))
    assert opened(clock=clock).get("domain:x.com").report is None  # read back, not memory
    clock.advance(S.ttl_not_found + 1)
    assert c.get("domain:x.com") is None  # short negative caching
    assert c.get("file:" + "b" * 32) is not None
    clock.advance(S.ttl_malicious)
    assert c.get(A64) is None
    assert c.purge() == 2 and c.stats()["aliases"] == 0


def test_other_instance_writes_seen_within_a_minute(opened):
    clock = FakeClock()
    a, b = opened(clock=clock), opened(clock=clock)
    a.put(entry(verdict="harmless", at=clock.now()))
    assert b.get(A64).verdict == "harmless"
    a.put(entry(verdict="malicious", at=clock.now()))
    assert b.get(A64).verdict == "harmless"  # b's memory, for now
    clock.advance(61)
    assert b.get(A64).verdict == "malicious"


def test_get_many_returns_requested_keys(opened):
    c = opened(CacheSettings(lru_size=0))
    items = [
        (entry(f"domain:d{i}.com", "harmless", c.clock.now()), [f"alias:{i}"]) for i in range(1200)
    ]
    c.put_many(items)
    got = c.get_many([f"alias:{i}" for i in range(0, 1200, 2)] + ["domain:none.com"])
    assert len(got) == 600 and got["alias:10"].key == "domain:d10.com"
    assert c.canonical(["alias:3", "domain:d3.com", "alias:none"]) == {"alias:3": "domain:d3.com"}


def test_one_key_twice_in_a_batch_keeps_the_last(opened):
    c = opened(CacheSettings(lru_size=0))
    c.put_many([(entry(verdict="harmless", at=c.clock.now()), ["x"]),
                (entry(verdict="malicious", at=c.clock.now()), ["x"])])  # fmt: skip
    assert c.get("x").verdict == "malicious" and c.stats()["entries"] == 1


def test_verdict_log_and_counters(opened):
    clock = FakeClock()
    c = opened(clock=clock)
    c.log([record("a.com", "malicious", "webhook", clock.now()),
           record("b.com", "harmless", "webhook", clock.now()),
           record("c.com", "suspicious", "webhook", clock.now())])  # fmt: skip
    rows = c.log_after(0, verdicts=["malicious", "suspicious"])
    assert [r.value for _, r in rows] == ["a.com", "c.com"]
    assert rows[0][1] == record("a.com", "malicious", "webhook", clock.now())
    assert c.log_after(rows[-1][0]) == []
    assert [r.value for _, r in c.log_after(0, limit=2)] == ["a.com", "b.com"]
    assert [r.value for r in c.recent(2)] == ["c.com", "b.com"]
    assert [r.value for r in c.recent(5, ["malicious"])] == ["a.com"]
    assert c.logged_recently(["domain:a.com"], "webhook") == {"domain:a.com"}
    assert c.logged_recently(["domain:a.com"], "splunk") == set()
    other = opened(clock=clock)  # another process: it knows only the log
    assert other.logged_recently(["domain:a.com", "domain:z.com"], "webhook") == {"domain:a.com"}
    clock.advance(S.log_interval)
    assert c.logged_recently(["domain:a.com"], "webhook") == set()
    assert other.logged_recently(["domain:a.com"], "webhook") == set()
    c.count_hit("cli", 3, 1)
    other.count_hit("cli", 1, 0)
    c.count_hit("cli", 0, 0)
    stats = c.stats()
    assert stats["hits_today"] == 4 and stats["misses_today"] == 1 and stats["hit_rate"] == 0.8
    assert stats["log_rows"] == 3 and stats["db_bytes"] > 0


def test_verdict_log_drops_rows_older_than_its_keep(opened):
    clock = FakeClock(1_800_000_000.0)
    c = opened(clock=clock)
    c.log([record(f"{i}.com", at=clock.now()) for i in range(5)])
    clock.advance(LOG_KEEP_DAYS * 86400 + 1)
    fresh = [record("new.com", at=clock.now())]
    c.log(fresh * 2)  # two rows added: up to four of the oldest go
    assert [r.value for _, r in c.log_after(0)] == ["4.com", "new.com", "new.com"]
    c.log(fresh)
    assert [r.value for _, r in c.log_after(0)] == ["new.com"] * 3  # recent rows always stay


def test_a_follower_sees_every_row_of_concurrent_writers(opened):
    """Writers on their own store objects log at once while a follower pages with log_after:
    row numbers rise in the order the follower sees them and it misses none."""
    follower = opened()
    writers = [opened() for _ in range(4)]
    done = threading.Event()

    def write(w: CacheStore, n: int) -> None:
        for i in range(40):
            w.log([record(f"w{n}-{i}.com"), record(f"w{n}-{i}b.com")])

    seen: List[int] = []

    def follow() -> None:
        cursor = 0
        while True:
            finished = done.is_set()
            rows = follower.log_after(cursor, limit=7)
            seen.extend(i for i, _ in rows)
            cursor = rows[-1][0] if rows else cursor
            if finished and not rows:
                return

    reader = threading.Thread(target=follow)
    reader.start()
    threads = [threading.Thread(target=write, args=(w, n)) for n, w in enumerate(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    done.set()
    reader.join(60)
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 4 * 40 * 2


def _writer(target: str, n: int, worker: int) -> None:
    c = open_cache(target, CacheSettings())
    for i in range(n):
        c.put(entry(f"domain:w{worker}-{i}.com", "harmless", c.clock.now()))
        c.log([record(f"w{worker}-{i}.com", "harmless", "p", c.clock.now())])
    c.close()


def test_concurrent_writers_from_processes(opened, target):
    opened()  # tables created before the writers start
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(target, 100, w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    stats = opened().stats()
    assert stats["entries"] == 300 and stats["log_rows"] == 300


def test_leases_one_holder_renewed_released_and_taken_over(opened):
    clock = FakeClock()
    a, b = opened(clock=clock), opened(clock=clock)
    assert a.take_leases(["file:x", "file:y"], 30) == {"file:x", "file:y"}
    assert b.take_leases(["file:x", "file:z"], 30) == {"file:z"}
    assert a.take_leases(["file:x"], 30) == {"file:x"}  # its own: still its own
    assert b.lease_held("file:x") and not a.lease_held("file:x")  # a holds it itself
    assert not b.lease_held("file:nobody")
    assert b.leases_held(["file:x", "file:y", "file:z", "file:nobody"]) == {"file:x", "file:y"}
    assert a.leases_held(["file:x", "file:y", "file:z"]) == {"file:z"}
    clock.advance(20)
    a.renew_leases(["file:x"], 30)
    clock.advance(20)  # y's time is up, x was renewed
    assert not b.lease_held("file:y")
    assert b.take_leases(["file:x", "file:y"], 30) == {"file:y"}
    # The entry and the end of the lease come in one transaction.
    a.put_many([(entry("file:x", at=clock.now()), [])], release=["file:x"])
    assert not b.lease_held("file:x") and b.get("file:x") is not None
    a.renew_leases(["file:x"], 30)  # released: renewing never takes it back
    assert not b.lease_held("file:x")
    a.release_leases(["file:y"])  # not a's any more: b keeps it
    assert a.lease_held("file:y")
    b.release_leases(["file:y", "file:z"])
    assert a.take_leases(["file:y", "file:z"], 30) == {"file:y", "file:z"}
    clock.advance(31)
    assert a.purge() == 0 and b.take_leases(["file:y"], 30) == {"file:y"}


def test_a_lease_is_not_taken_on_a_value_answered_meanwhile(opened):
    # The holder stored the answer and left between our cache miss and our take: we take no
    # lease (and so make no call); the entry is there to read.
    clock = FakeClock()
    a, b = opened(clock=clock), opened(clock=clock)
    assert a.take_leases([A64], 30)
    a.put_many([(entry(at=clock.now()), ["file:" + "b" * 32])], release=[A64])
    assert b.take_leases([A64, "file:" + "b" * 32, "file:z"], 30) == {"file:z"}
    assert not b.lease_held(A64)  # nothing left behind either
    clock.advance(S.ttl_malicious + 1)  # expired: asking again is right
    assert b.take_leases([A64], 30) == {A64}


def test_a_dead_holder_leaves_its_lease_free(opened, target):
    opened()
    code = ("import sys; from connectors.core.config import CacheSettings\n"
            "from connectors.core.store import open_cache\n"
            "c = open_cache(sys.argv[1], CacheSettings())\n"
            "assert c.take_leases(['file:dead'], 3600) == {'file:dead'}\n"
            "c.close()\n")  # fmt: skip
    subprocess.run([sys.executable, "-c", code, target], check=True, timeout=60)
    c = opened()
    assert not c.lease_held("file:dead")  # held for an hour, by a process that is gone
    assert c.leases_held(["file:dead"]) == set()
    assert c.take_leases(["file:dead"], 30) == {"file:dead"}


def test_concurrent_takers_win_each_key_once(opened):
    """Many store objects take overlapping key sets in different orders at once: each key has
    exactly one holder (and no deadlock stops anyone)."""
    keys = [f"domain:k{i}.com" for i in range(60)]
    stores = [opened() for _ in range(6)]
    won: List[set] = [set() for _ in stores]
    start = threading.Barrier(len(stores))

    def take(n: int) -> None:
        mine = random.Random(n).sample(keys, 40)
        start.wait()
        for i in range(0, 40, 8):
            won[n] |= stores[n].take_leases(mine[i : i + 8], 30)

    threads = [threading.Thread(target=take, args=(n,)) for n in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    everyone = [k for w in won for k in w]
    assert len(everyone) == len(set(everyone))
    assert set(everyone) == {k for n in range(len(stores))
                             for k in random.Random(n).sample(keys, 40)}  # fmt: skip


def test_rescan_claimed_once_per_period(opened):
    clock = FakeClock()
    a, b = opened(clock=clock), opened(clock=clock)
    assert a.claim_rescan("file:x", 30)
    assert not b.claim_rescan("file:x", 30) and not a.claim_rescan("file:x", 30)
    clock.advance(31 * 86400)
    assert b.claim_rescan("file:x", 30)
    b.forget_rescan("file:x")
    assert a.claim_rescan("file:x", 30)


def test_purge_everything(opened):
    c = opened()
    c.put_many([(entry(f"domain:{i}.com", at=c.clock.now()), [f"a{i}"]) for i in range(5)])
    assert c.purge(expired_only=False) == 5
    assert c.get("a1") is None and c.stats()["entries"] == c.stats()["aliases"] == 0


def test_tables_are_listed_with_the_same_columns(opened, tmp_path):
    """What `vtconnect db copy` relies on: every backend names the same logical tables, and
    each has the SQLite table's columns under the same names."""
    c = opened()
    lite = open_cache(tmp_path / "other.db", S)
    try:
        assert list(c.TABLES) == list(lite.TABLES)
        for logical, table in lite.TABLES.items():
            columns = [r[1] for r in lite.db.execute(f"PRAGMA table_info({table})")]
            if hasattr(c, "pool"):
                with c.pool.connection() as conn:
                    got = [d.name for d in conn.execute(
                        f"SELECT * FROM {c.TABLES[logical]} LIMIT 0").description]  # fmt: skip
            else:
                got = [r[1] for r in c.db.execute(f"PRAGMA table_info({c.TABLES[logical]})")]
            assert got[: len(columns)] == columns, logical
    finally:
        lite.close()
