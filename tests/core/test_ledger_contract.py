"""One contract for both quota ledgers (SQLite, and a real PostgreSQL from tests/pg.py): the
numbers a Book keeps, tickets and stamps, the cooldown that only moves later, rows and load for
copying, and the governor on top of each. Several ledger instances on one target stand for
several hosts: takers in many threads and processes together never get more slots than the
budget, and a 429 seen by one holds the others."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
from typing import List

import pytest

from connectors.core import database
from connectors.core.clock import FakeClock
from connectors.core.ledger import TABLES, Ledger, Look, open_ledger
from connectors.core.quota import Priority, QuotaGovernor, Refused

DAY = "2026-01-01"


@pytest.fixture(params=["sqlite", "postgres"])
def target(request, tmp_path) -> str:
    if request.param == "postgres":
        return request.getfixturevalue("pg_database")
    return str(tmp_path / "quota.db")


@pytest.fixture
def ledger(target):
    led = open_ledger(target)
    yield led
    led.close()


def other_target(target: str, tmp_path, pg_url_getter) -> str:
    """A target of the other backend (for copies between them)."""
    if target.startswith("postgresql://"):
        return str(tmp_path / "copy.db")
    return pg_url_getter()


# -- the Book --------------------------------------------------------------------------------
def test_record_counts_the_day_the_window_and_shares(ledger):
    tickets = [ledger.write("k", lambda b, at=at: b.record(at, DAY)) for at in (10.0, 20.0)]
    tickets.append(ledger.write("k", lambda b: b.record(30.0, DAY, "webhook")))
    assert all(t > 0 for t in tickets) and len(set(tickets)) == 3
    assert ledger.read("k", lambda b: b.day_used(DAY)) == 3
    assert ledger.read("k", lambda b: b.day_used("2026-01-02")) == 0
    assert ledger.read("k", lambda b: b.shares_used(DAY)) == {"webhook": 1}  # None: not counted
    assert ledger.read("k", lambda b: b.window(0.0)) == (3, 10.0)
    assert ledger.read("k", lambda b: b.window(15.0)) == (2, 20.0)  # strictly after `since`
    assert ledger.read("k", lambda b: b.window(30.0)) == (0, None)
    assert ledger.read("other", lambda b: (b.day_used(DAY), b.window(0.0))) == (0, (0, None))


def test_prune_drops_only_the_keys_old_calls(ledger):
    for at in (10.0, 20.0, 30.0):
        ledger.write("k", lambda b, at=at: b.record(at, DAY))
    ledger.write("other", lambda b: b.record(5.0, DAY))
    assert ledger.write("k", lambda b: b.window(20.0, prune=True)) == (1, 30.0)
    assert ledger.read("k", lambda b: b.window(0.0)) == (1, 30.0)  # gone, not only unseen
    assert ledger.read("other", lambda b: b.window(0.0)) == (1, 5.0)
    assert ledger.read("k", lambda b: b.day_used(DAY)) == 3  # the day keeps counting them


def test_look_reads_everything_at_once_and_prunes(ledger):
    for at in (10.0, 20.0, 30.0):
        ledger.write("k", lambda b, at=at: b.record(at, DAY, "cli"))
    ledger.write("k", lambda b: b.put_state(40.0, 9, 5.0))
    assert ledger.read("k", lambda b: b.look(DAY, 15.0)) == Look(
        (40.0, 9, 5.0), 3, {}, 2, 20.0)  # fmt: skip
    assert ledger.write("k", lambda b: b.look(DAY, 15.0, shares=True, prune=True)) == Look(
        (40.0, 9, 5.0), 3, {"cli": 3}, 2, 20.0)  # fmt: skip
    assert [at for _, at in ledger.rows("calls")] == [20.0, 30.0]
    assert ledger.read("none", lambda b: b.look(DAY, 0.0, shares=True)) == Look(
        None, 0, {}, 0, None)  # fmt: skip


def test_stamp_moves_a_call_to_when_its_answer_came(ledger):
    first = ledger.write("k", lambda b: b.record(10.0, DAY))
    ledger.write("k", lambda b: b.record(11.0, DAY))
    ledger.stamp("k", first, 70.5)
    assert ledger.read("k", lambda b: b.window(60.0)) == (1, 70.5)
    ledger.stamp("other", first, 99.0)  # another key's ticket number: nothing moves
    assert ledger.read("k", lambda b: b.window(70.0)) == (1, 70.5)


def test_state_and_a_cooldown_that_only_moves_later(ledger):
    assert ledger.read("k", lambda b: b.state()) is None and ledger.cooldown_until("k") == 0.0
    ledger.write("k", lambda b: b.put_state(100.0, 500, 40.0))
    assert ledger.read("k", lambda b: b.state()) == (100.0, 500, 40.0)
    ledger.write("k", lambda b: b.put_state(90.0, 250, 50.0))  # a shorter Retry-After
    assert ledger.read("k", lambda b: b.state()) == (100.0, 250, 50.0)
    assert ledger.cooldown_until("k") == 100.0 and ledger.cooldown_until("other") == 0.0


def test_a_failed_transaction_leaves_nothing(ledger):
    def fail(book):
        book.record(10.0, DAY, "cli")
        raise RuntimeError("decided otherwise")

    with pytest.raises(RuntimeError):
        ledger.write("k", fail)
    assert ledger.read("k", lambda b: (b.day_used(DAY), b.window(0.0), b.shares_used(DAY))) == (
        0, (0, None), {},
    )  # fmt: skip


def test_committed_numbers_survive_a_reopen(ledger, target):
    ledger.write("k", lambda b: (b.record(10.0, DAY, "splunk"), b.put_state(50.0, 7, 1.0)))
    ledger.close()
    again = open_ledger(target)
    try:
        assert again.read("k", lambda b: (b.day_used(DAY), b.shares_used(DAY), b.state())) == (
            1, {"splunk": 1}, (50.0, 7, 1.0),
        )  # fmt: skip
    finally:
        again.close()


# -- rows and load: what `vtconnect db copy` moves ------------------------------------------
def _fill(led: Ledger) -> None:
    led.write("k", lambda b: b.record(10.0, DAY, "webhook"))
    led.write("k", lambda b: b.record(12.5, DAY, "cli"))
    led.write("j", lambda b: b.record(11.0, "2025-12-31"))
    led.write("k", lambda b: b.put_state(99.0, 3, 9.0))


def test_tables_and_rows(ledger):
    assert ledger.tables() == TABLES
    _fill(ledger)
    assert list(ledger.rows("calls")) == [("j", 11.0), ("k", 10.0), ("k", 12.5)]
    assert list(ledger.rows("days")) == [("j", "2025-12-31", 1), ("k", DAY, 2)]
    assert list(ledger.rows("state")) == [("k", 99.0, 3, 9.0)]
    assert list(ledger.rows("shares")) == [("k", DAY, "cli", 1), ("k", DAY, "webhook", 1)]
    with pytest.raises(ValueError, match="no table 'nope'"):
        ledger.rows("nope")


def test_rows_load_into_the_other_backend_and_back(ledger, target, tmp_path, request):
    _fill(ledger)
    copy = open_ledger(other_target(target, tmp_path, lambda: request.getfixturevalue(
        "pg_database")))  # fmt: skip
    try:
        for table in ledger.tables():
            assert copy.load(table, ledger.rows(table)) == len(list(ledger.rows(table)))
        for table in ledger.tables():
            assert list(copy.rows(table)) == list(ledger.rows(table)), table
        # keyed rows already there take the copied numbers; the copy keeps working
        copy.write("k", lambda b: b.record(20.0, DAY))
        copy.load("days", ledger.rows("days"))
        assert copy.read("k", lambda b: (b.day_used(DAY), b.window(0.0))) == (2, (3, 10.0))
    finally:
        copy.close()


# -- the governor on each backend -------------------------------------------------------------
def governor(target, clock, per_minute=4, per_day=500, **kw) -> QuotaGovernor:
    return QuotaGovernor(target, "shared-key", per_minute, per_day, clock, **kw)


async def test_hosts_share_one_window_and_one_day(target):
    clock = FakeClock()
    hosts = [governor(target, clock), governor(target, clock)]  # two ledger instances
    try:
        got = [await hosts[i % 2].acquire(deadline=clock.now()) for i in range(6)]
        assert got == [True] * 4 + [False] * 2  # 4/min for both together
        assert hosts[1].status()["used_last_minute"] == 4
        clock.advance(61)
        assert await hosts[1].acquire(deadline=clock.now())
        assert hosts[0].status()["used_today"] == 5
    finally:
        for g in hosts:
            g.close()


async def test_a_429_on_one_host_holds_the_others_and_lowers_their_rate(target):
    clock = FakeClock()
    a, b = governor(target, clock, per_minute=100), governor(target, clock, per_minute=100)
    c = governor(target, clock, per_minute=0, per_day=0)  # unlimited: still held
    try:
        a.learn_429(retry_after=30)
        t = clock.now()
        assert await b.acquire(deadline=t + 10) is False
        assert await c.acquire(deadline=t + 10) is False
        assert b.status()["per_minute"] == 50 and b.status()["cooldown_until"]
        assert await b.acquire(deadline=t + 40) is True and clock.now() >= t + 30
    finally:
        for g in (a, b, c):
            g.close()


async def test_sent_stamps_the_shared_slot(target):
    clock = FakeClock()
    a, b = governor(target, clock, per_minute=1), governor(target, clock, per_minute=1)
    try:
        ticket = await a.take()
        clock.advance(50)  # the answer came 50 s after the slot was taken
        a.sent(ticket)
        clock.advance(15)  # 65 s after the take, 15 s after the answer
        assert await b.acquire(deadline=clock.now()) is False
        clock.advance(46)
        assert await b.acquire(deadline=clock.now()) is True
    finally:
        a.close()
        b.close()


async def test_shares_are_one_reservation_for_every_host(target):
    clock = FakeClock()
    shares = {"webhook": 0.5}
    a = governor(target, clock, per_minute=0, per_day=10, shares=shares)
    b = governor(target, clock, per_minute=0, per_day=10, shares=shares)
    try:
        assert all([await a.acquire(connector="splunk") for _ in range(5)])
        assert await b.acquire(connector="splunk") is False  # the unreserved half is spent
        assert all([await b.acquire(Priority.ALERT, connector="webhook") for _ in range(4)])
        assert a.status()["shares"]["webhook"]["used"] == 4
    finally:
        a.close()
        b.close()


# -- concurrent takers never exceed the budget ---------------------------------------------
def _take_all(target: str, tries: int, per_minute: int, per_day: int) -> int:
    """One host: its own ledger and governor, taking slots as fast as it can, never waiting."""
    g = QuotaGovernor(target, "shared-key", per_minute, per_day)
    try:
        return sum(1 for _ in range(tries) if asyncio.run(g.acquire(deadline=time.time())))
    finally:
        g.close()


@pytest.mark.parametrize("per_minute, per_day", [(25, 0), (0, 25)])
def test_threads_together_get_exactly_the_budget(target, per_minute, per_day):
    open_ledger(target).close()  # the schema exists before the race
    got: List[int] = []
    start = threading.Barrier(6)

    def host() -> None:
        start.wait()
        got.append(_take_all(target, 15, per_minute, per_day))

    threads = [threading.Thread(target=host) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(got) == 6 and sum(got) == 25  # 90 tries, a budget of 25: never one more


def _process_host(target: str, results, tries: int) -> None:
    results.put(_take_all(target, tries, 20, 0))


def test_processes_together_get_exactly_the_budget(target):
    open_ledger(target).close()
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_process_host, args=(target, results, 12)) for _ in range(3)]
    for p in procs:
        p.start()
    got = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    assert sum(got) == 20


# -- PostgreSQL only: the schema ------------------------------------------------------------
def test_postgres_schema_is_versioned_and_a_newer_one_refused(pg_database):
    from connectors.cli import db as cli_db
    from connectors.core.ledger.postgres import SCHEMA

    assert SCHEMA in cli_db.schemas()
    open_ledger(pg_database).close()
    conn = database.connect(pg_database)
    try:
        assert database.installed_versions(conn)["quota"] == SCHEMA.version
        conn.execute("UPDATE vtconnect_schema SET version = 99 WHERE component = 'quota'")
    finally:
        conn.close()
    with pytest.raises(database.SchemaTooNew, match="quota is version 99"):
        QuotaGovernor(pg_database, "k", 4, 500)


async def test_an_unreachable_database_refuses_slots_and_never_guesses(caplog):
    from tests import pg

    if pg.disabled_reason():
        pytest.skip(pg.disabled_reason())
    server = pg.PostgresServer()  # its own server: this one is stopped mid-test
    g = QuotaGovernor(server.start(), "k", 4, 500)
    try:
        ticket = await g.take()
        server.stop()
        with caplog.at_level("WARNING"):
            g.sent(ticket)  # the request is over; its stamp cannot be written
        assert "cannot stamp a request's slot" in caplog.text
        with pytest.raises(Refused, match="the quota ledger cannot be reached"):
            await g.take()
    finally:
        server.stop()
        g.close()
