"""The verdict-log publisher on PostgreSQL runs once among replicas: a session-level advisory
lock on a connection of its own (taken over when that session ends), and a LISTEN on
`vtconnect_verdicts` that starts a pass as soon as a verdict is announced. Real PostgreSQL
(tests/pg.py), in process; tests/scale/test_publisher_replicas.py runs real replicas."""

from __future__ import annotations

import asyncio
import json

import psycopg
import pytest

from connectors.core import config
from connectors.core.enricher import Enricher
from taxii import config as taxii_config
from taxii import publisher
from taxii.publisher import CHANNEL, LOCK_PUBLISHER, RunnerLock
from taxii.store import open_store
from tests import pg

from ..taxii.conftest import FEED

EICAR = "44d88612fea8a8f36de82e1278abb02f"
DOMAIN = "malware.wicar.org"  # the emulator calls it malicious


def holders(url: str) -> list:
    """application_name of every session holding a publisher lock in this database."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s",
            (LOCK_PUBLISHER,),
        ).fetchall()
    return [r[0] for r in rows]


async def until(check, tries: int = 400):
    for _ in range(tries):
        got = await check()
        if got:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


async def test_one_runner_and_another_takes_over_when_its_session_ends(pg_database):
    a, b = RunnerLock(pg_database), RunnerLock(pg_database)
    try:
        assert await a.acquire() is True
        assert await b.acquire() is False  # another replica holds it
        assert await a.acquire() is True  # held: asking again changes nothing
        assert await b.acquire() is False
        assert a.role == "running" and b.role == "standby"
        assert len(holders(pg_database)) == 1 and str(a.name) in holders(pg_database)[0]
        # The runner's session ends under it (a killed replica, a dropped connection): the
        # server releases the lock, the runner notices at its next wait, the other takes over.
        with psycopg.connect(pg_database, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (a.conn.info.backend_pid,))
        try:
            await a.wait(30)
            raise AssertionError("wait returned on a terminated session")
        except a.errors as exc:
            await a.lost(exc)
        assert a.role == "lost" and not a.held
        assert await until(b.acquire)
        assert b.role == "running"
        assert await a.acquire() is False  # the old runner, reconnected, stands by
        assert a.role == "standby"
    finally:
        await a.close()
        await b.close()
    # closing the runner's session released the lock
    assert holders(pg_database) == []


async def test_two_deployments_in_one_database_do_not_exclude_each_other(pg_url, pg_database):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        other = pg.fresh_schema(conn, pg_url)  # another deployment's schema, same database
    a, b = RunnerLock(pg_database), RunnerLock(other)
    try:
        assert await a.acquire() and await b.acquire()
    finally:
        await a.close()
        await b.close()
        with psycopg.connect(other, autocommit=True) as conn:
            (schema,) = conn.execute("SELECT current_schema()").fetchone()
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def own_database(pg_url):
    """A database of its own: NOTIFY reaches every session of a database, whatever its schema,
    and other tests' verdict logs announce their rows too."""
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    name = "n_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    parts = urlsplit(pg_url)
    yield urlunsplit(parts._replace(path="/" + name))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


async def test_a_notify_wakes_the_runner(own_database):
    pg_database = own_database
    lock = RunnerLock(pg_database)
    try:
        assert await lock.acquire()
        waiting = asyncio.create_task(lock.wait(3600))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        with psycopg.connect(pg_database, autocommit=True) as conn:
            for n in range(3):  # a burst: one wake-up
                conn.execute(f"NOTIFY {CHANNEL}, '{n}'")
        assert await asyncio.wait_for(waiting, 30) is True
        assert await lock.wait(0) is False  # the burst was drained with that one wake-up
    finally:
        await lock.close()


def feed_settings(emulator_url, tmp_path):
    """Settings with one collection fed by the publisher; poll_seconds is an hour."""
    feed = {"id": FEED, "title": "Feed", "read": ["*"], "publish": ["malicious"], "test": True}
    doc = {"quota": {"tier": "unlimited"}, "taxii": {"poll_seconds": 3600, "collections": [feed]}}
    return config.for_emulator(config.from_mapping(doc, env={}), emulator_url, str(tmp_path))


def objects(store, kind="indicator"):
    page = store.query(FEED, limit=100, types=[kind])
    return [json.loads(row["body"]) for row in page.objects]


async def test_the_runner_publishes_at_once_on_a_notify(emulator_url, tmp_path, own_database):
    pg_database = own_database  # no other test's NOTIFY can start the pass
    """poll_seconds is an hour: only the NOTIFY can start the second pass."""
    settings = feed_settings(emulator_url, tmp_path)
    cfg = taxii_config.load(settings.raw)
    store = open_store(pg_database)
    enricher = Enricher(settings, connector="cli")
    task = None
    try:
        await enricher.enrich([EICAR])
        task = asyncio.create_task(publisher.run_replicated(pg_database, enricher, store, cfg))

        async def published(value):
            found = await asyncio.to_thread(objects, store)
            return [o for o in found if value in o["pattern"]]

        await until(lambda: published(EICAR))  # the first pass, once the lock is held
        assert len(holders(pg_database)) == 1
        await enricher.enrich([DOMAIN])
        with psycopg.connect(pg_database, autocommit=True) as conn:
            conn.execute(f"NOTIFY {CHANNEL}")
        (ind,) = await until(lambda: published(DOMAIN))
        assert ind["pattern"] == f"[domain-name:value = '{DOMAIN}']"
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await enricher.aclose()
        enricher.close()
        store.close()
    assert holders(pg_database) == []  # a stopped runner leaves no lock behind


async def test_a_backlog_is_published_without_waiting_for_the_next_poll(
    emulator_url, tmp_path, pg_database
):
    """A replica taking over (or a burst) finds more rows than one pass reads (1,000): it goes
    on at once instead of waiting for a NOTIFY or poll_seconds (an hour here)."""
    import time

    from connectors.core.store import LogRecord

    settings = feed_settings(emulator_url, tmp_path)
    cfg = taxii_config.load(settings.raw)
    store = open_store(pg_database)
    enricher = Enricher(settings, connector="cli")
    now = time.time()
    names = [f"host{i}.backlog.example" for i in range(2500)]
    enricher.cache.log(
        LogRecord(f"domain:{n}", "domain", n, "malicious", 90, "webhook", now) for n in names
    )
    task = asyncio.create_task(publisher.run_replicated(pg_database, enricher, store, cfg))
    try:

        def count():
            page = store.query(FEED, limit=3000, types=["indicator"])
            return len(page.objects)

        async def all_there():
            return await asyncio.to_thread(count) == len(names)

        await until(all_there, tries=1200)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await enricher.aclose()
        enricher.close()
        store.close()
