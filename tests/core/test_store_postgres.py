"""What only the PostgreSQL core store has to promise, against a real server (tests/pg.py): the
verdict log's row numbers become visible in order (a follower never skips a late commit),
every log insert notifies `vtconnect_verdicts`, a lease of another host lasts until its expiry
(its pid means nothing here), the schema is versioned and a newer one refused."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from connectors.core import database
from connectors.core.clock import FakeClock
from connectors.core.config import CacheSettings
from connectors.core.store import CacheEntry, LogRecord, open_cache
from connectors.core.store.postgres import CHANNEL, SCHEMA, log_rows

S = CacheSettings()


def record(value: str) -> LogRecord:
    return LogRecord(f"domain:{value}", "domain", value, "malicious", 80, "cli", time.time())


def row(r: LogRecord):
    return (r.key, r.kind, r.value, r.verdict, r.score, r.connector, r.at, r.reason)


@pytest.fixture
def store(pg_database):
    s = open_cache(pg_database, S)
    yield s
    s.close()


def _waiting_on_a_lock(conn) -> bool:
    return bool(conn.execute(
        "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = "
        "current_database()").fetchall())  # fmt: skip


def test_a_follower_never_skips_a_row_that_commits_late(store, pg_database):
    """Another host's log transaction numbered its row and has not committed yet; a second
    log() meanwhile must not become visible with a higher number first, or a follower at that
    number would never see the late row."""
    late = psycopg.connect(pg_database)  # not autocommit: the transaction stays open
    watcher = psycopg.connect(pg_database, autocommit=True)
    try:
        log_rows(late, [row(record("late.com"))], 0.0)  # the other host, before its COMMIT
        second = threading.Thread(target=store.log, args=([record("second.com")],))
        second.start()
        deadline = time.monotonic() + 30
        while second.is_alive() and not _waiting_on_a_lock(watcher):
            assert time.monotonic() < deadline, "the second log() neither waited nor finished"
            time.sleep(0.01)
        seen = store.log_after(0)  # what a publisher reads now
        cursor = seen[-1][0] if seen else 0
        late.commit()
        second.join(30)
        seen += store.log_after(cursor)
        assert [r.value for _, r in seen] == ["late.com", "second.com"]
    finally:
        late.close()
        watcher.close()


def test_every_log_insert_notifies(store, pg_database):
    listener = psycopg.connect(pg_database, autocommit=True)
    try:
        listener.execute(f"LISTEN {CHANNEL}")
        store.log([record("a.com"), record("b.com")])
        got = next(listener.notifies(timeout=30, stop_after=1))
        assert got.channel == "vtconnect_verdicts"
        assert int(got.payload) == store.log_after(0)[-1][0]  # the highest row number
        store.log([])  # nothing logged: nothing to wake anyone for
        store.log([record("c.com")])
        got = next(listener.notifies(timeout=30, stop_after=1))
        assert int(got.payload) == store.log_after(0)[-1][0]
    finally:
        listener.close()


def test_a_lease_of_another_host_lasts_until_its_expiry(store, pg_database):
    clock = FakeClock(time.time())
    here = open_cache(pg_database, S, clock)
    try:
        with psycopg.connect(pg_database, autocommit=True) as conn:
            # pid 1 is alive here, a huge pid is not: on another host neither says anything.
            conn.execute(
                "INSERT INTO cache_leases VALUES ('file:x', 'far:1', 999999999, %s, 'far-host')",
                (clock.now() + 30,),
            )
        assert here.lease_held("file:x") and here.take_leases(["file:x"], 30) == set()
        clock.advance(31)
        assert not here.lease_held("file:x")
        assert here.take_leases(["file:x"], 30) == {"file:x"}
    finally:
        here.close()


def test_schema_is_versioned_and_a_newer_one_refused(store, pg_database):
    conn = database.connect(pg_database)
    try:
        assert database.installed_versions(conn)["cache"] == SCHEMA.version
        conn.execute("UPDATE vtconnect_schema SET version = 99 WHERE component = 'cache'")
    finally:
        conn.close()
    with pytest.raises(database.SchemaTooNew, match="cache is version 99, newer than this"):
        open_cache(pg_database, S)


def test_keys_with_nul_are_misses_not_errors(store):
    bad = "domain:a\x00b"
    assert store.get_many([bad, "domain:none"]) == {}
    assert store.canonical([bad]) == {} and store.take_leases([bad], 30) == set()
    assert not store.lease_held(bad) and store.logged_recently([bad], "cli") == set()


def test_after_copy_numbers_new_rows_after_the_copied_ones(store, pg_database):
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO cache_verdict_log (id, key, kind, value, verdict, score, connector, at) "
            "VALUES (41, 'domain:old.com', 'domain', 'old.com', 'malicious', 80, 'cli', %s)",
            (time.time(),),
        )
    store.after_copy()
    store.log([record("new.com")])
    assert [(i, r.value) for i, r in store.log_after(0)] == [(41, "old.com"), (42, "new.com")]


def test_stats_and_entries_of_a_reopened_store(store, pg_database):
    store.put(CacheEntry("domain:x.com", "harmless", {"k": 1}, time.time()), ["alias:x"])
    again = open_cache(pg_database, S)
    try:
        assert again.get("alias:x").report == {"k": 1}
        stats = again.stats()
        assert stats["entries"] == 1 and stats["aliases"] == 2 and stats["db_bytes"] > 0
    finally:
        again.close()
