from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time

import pytest

from connectors.core.clock import FakeClock
from connectors.core.quota import Priority, QuotaGovernor, Refused
from connectors.emulator.quota import TierQuota


def gov(tmp_path, per_minute=4, per_day=500, clock=None, key="k"):
    return QuotaGovernor(tmp_path / "q.db", key, per_minute, per_day, clock or FakeClock())


async def test_minute_window_and_deadline(tmp_path):
    clock = FakeClock()
    g = gov(tmp_path, clock=clock)
    assert [await g.acquire() for _ in range(4)] == [True] * 4
    start = clock.now()
    assert await g.acquire(deadline=start + 30) is False
    assert clock.now() == start  # refused at once: the next slot is after the deadline
    assert await g.acquire(deadline=start + 61) is True
    assert 59 <= clock.now() - start <= 61


async def test_daily_budget_resets_at_midnight_utc(tmp_path):
    clock = FakeClock(start=1_767_225_600.0 + 86400 - 300)  # 23:55 UTC
    g = gov(tmp_path, per_minute=0, per_day=3, clock=clock)
    assert [await g.acquire() for _ in range(4)] == [True, True, True, False]
    assert g.status()["left_today"] == 0
    clock.advance(301)
    assert await g.acquire() is True


async def test_priorities_keep_budget_for_interactive(tmp_path):
    g = gov(tmp_path, per_minute=0, per_day=100)
    background = 0
    while await g.acquire(Priority.BACKGROUND):
        background += 1
    assert background == 60
    bulk = 0
    while await g.acquire(Priority.BULK):
        bulk += 1
    assert bulk == 25
    interactive = 0
    while await g.acquire(Priority.INTERACTIVE):
        interactive += 1
    assert interactive == 15


async def test_waiting_interactive_goes_before_background(tmp_path):
    clock = FakeClock()
    g = gov(tmp_path, per_minute=1, per_day=0, clock=clock)
    assert await g.acquire()
    order = []

    async def ask(p):
        if await g.acquire(p, clock.now() + 200):
            order.append(p)

    await asyncio.gather(ask(Priority.BACKGROUND), ask(Priority.INTERACTIVE))
    assert order == [Priority.INTERACTIVE, Priority.BACKGROUND]


async def test_learning_from_429(tmp_path):
    clock = FakeClock()
    g = gov(tmp_path, per_minute=10, per_day=0, clock=clock)
    for _ in range(6):
        assert await g.acquire()
    g.learn_429(retry_after=30)
    t = clock.now()
    assert await g.acquire(deadline=t + 10) is False  # cooldown
    status = g.status()
    assert status["per_minute"] == 5 and status["cooldown_until"]
    other = gov(tmp_path, per_minute=10, per_day=0, clock=clock)  # another process, same key
    assert await other.acquire(deadline=t + 10) is False
    clock.advance(3700)
    assert g.status()["per_minute"] == 10


async def test_unlimited_records_nothing_but_honours_a_cooldown(tmp_path):
    clock = FakeClock()
    g = gov(tmp_path, per_minute=0, per_day=0, clock=clock)
    assert all([await g.acquire() for _ in range(100)])
    assert list(g.ledger.rows("calls")) == []
    other = gov(tmp_path, per_minute=0, per_day=0, clock=clock)  # another process, same dir
    other.learn_429(retry_after=30)
    t = clock.now()
    assert await g.acquire(deadline=t + 10) is False  # Retry-After holds "unlimited" too
    assert clock.now() == t  # refused at once, without sleeping
    assert await g.acquire(deadline=t + 40) is True
    assert 29.9 <= clock.now() - t <= 30.1


def _state_reads(governor: QuotaGovernor) -> list:
    """The cooldown queries the governor's ledger connection runs from now on."""
    seen: list = []
    governor.ledger.db.set_trace_callback(
        lambda sql: seen.append(sql) if "FROM state" in sql else None
    )
    return seen


@pytest.fixture
def still(monkeypatch):
    """The ledger's monotonic clock stands still (a loaded machine does not expire its reads);
    still.advance(s) moves it."""
    import connectors.core.ledger.sqlite as ledger_sqlite

    class Still:
        now = time.monotonic()

        def advance(self, seconds: float) -> None:
            self.now += seconds

    clock = Still()
    monkeypatch.setattr(ledger_sqlite, "_monotonic", lambda: clock.now)
    return clock


async def test_unlimited_queries_the_cooldown_only_after_a_change(tmp_path, still):
    """The change mark beside the ledger (ledger/mark.py): one query, not one per request,
    while nothing changes; a 429 learned by another ledger on the host is seen at once."""
    clock = FakeClock()
    g = gov(tmp_path, per_minute=0, per_day=0, clock=clock)
    assert await g.acquire()
    reads = _state_reads(g)
    assert all([await g.acquire() for _ in range(200)])
    assert len(reads) == 0  # the cooldown read before the trace started still holds
    other = gov(tmp_path, per_minute=0, per_day=0, clock=clock)
    other.learn_429(retry_after=30)
    assert await g.acquire(deadline=clock.now() + 10) is False
    assert len(reads) == 1
    assert await g.acquire(deadline=clock.now() + 10) is False
    assert len(reads) == 1


def _learn_429(path: str) -> None:
    g = QuotaGovernor(path, "k", 0, 0)
    g.learn_429(retry_after=120)
    g.close()


async def test_a_429_learned_by_another_process_holds_an_unlimited_tier_at_once(tmp_path, still):
    g = gov(tmp_path, per_minute=0, per_day=0, clock=FakeClock(start=time.time()))
    assert all([await g.acquire() for _ in range(5)])
    reads = _state_reads(g)
    proc = multiprocessing.get_context("spawn").Process(
        target=_learn_429, args=(str(tmp_path / "q.db"),)
    )
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0
    assert await g.acquire(deadline=g.clock.now() + 10) is False
    assert len(reads) == 1  # seen through the mark, not through an expired read


async def _unlimited(tmp_path):
    """An unlimited tier's governor that has read the cooldown once."""
    clock = FakeClock()
    g = gov(tmp_path, per_minute=0, per_day=0, clock=clock)
    assert await g.acquire()
    return clock, g


async def _held_by_a_429_elsewhere(tmp_path, clock, g) -> bool:
    """Another ledger on the host learns a 429: g's next request is refused at once."""
    gov(tmp_path, per_minute=0, per_day=0, clock=clock).learn_429(retry_after=30)
    return await g.acquire(deadline=clock.now() + 10) is False


async def test_without_a_mark_every_ask_queries(tmp_path, still):
    (tmp_path / "q.db-state").mkdir()  # the mark cannot be made: the ledger queries each time
    clock, g = await _unlimited(tmp_path)
    reads = _state_reads(g)
    assert all([await g.acquire() for _ in range(5)]) and len(reads) == 5
    assert await _held_by_a_429_elsewhere(tmp_path, clock, g)


async def test_a_truncated_mark_is_mended_and_the_cooldown_still_seen(tmp_path, still):
    clock, g = await _unlimited(tmp_path)
    (tmp_path / "q.db-state").write_bytes(b"")  # an admin's `: > quota.db-state`
    reads = _state_reads(g)
    assert all([await g.acquire() for _ in range(5)])
    assert len(reads) == 1 and len((tmp_path / "q.db-state").read_bytes()) == 8
    assert await _held_by_a_429_elsewhere(tmp_path, clock, g)


async def test_a_writer_without_a_mark_is_seen_within_a_second(tmp_path, still):
    """An older vtconnect on the host changes the row and sets no mark."""
    import connectors.core.ledger.sqlite as ledger_sqlite

    clock, g = await _unlimited(tmp_path)
    old = gov(tmp_path, per_minute=0, per_day=0, clock=clock)
    old.ledger.db.execute(
        "INSERT INTO state VALUES (?, ?, 0, 0)", (old.key, clock.now() + 30)
    )  # no mark
    still.advance(ledger_sqlite.RECHECK)
    assert await g.acquire(deadline=clock.now() + 10) is False


async def test_simulated_day_has_no_429_and_uses_the_budget(tmp_path):
    clock = FakeClock(start=1_767_225_600.0)
    g = gov(tmp_path, clock=clock)
    vt_side = TierQuota(4, 500, clock=clock.now)
    end = clock.now() + 6 * 3600  # six hours: 1,440 slots, so the 500 budget is the limit
    granted = refused_by_vt = 0

    async def demand(p):
        nonlocal granted, refused_by_vt
        while clock.now() < end:
            if await g.acquire(p, clock.now() + 30):
                if vt_side.take() is None:
                    granted += 1
                else:
                    refused_by_vt += 1
            else:
                await clock.sleep(20)

    await asyncio.gather(
        *(demand(p) for p in (Priority.INTERACTIVE, Priority.BULK, Priority.INTERACTIVE))
    )
    assert refused_by_vt == 0
    assert granted >= 0.95 * 500


def _taker(path: str, results, n: int) -> None:
    g = QuotaGovernor(path, "shared", 20, 0)
    got = 0
    for _ in range(n):
        if asyncio.run(g.acquire(deadline=time.time())):
            got += 1
    results.put(got)


def test_limit_holds_across_processes(tmp_path):
    path = str(tmp_path / "q.db")
    QuotaGovernor(path, "shared", 20, 0).status()
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_taker, args=(path, results, 15)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    total = sum(results.get(timeout=5) for _ in procs)
    assert total == 20  # 45 asked within a minute, 20 allowed, on the whole host


async def test_429_learning_is_gentle_bounded_and_recovers(tmp_path, caplog):
    clock = FakeClock()
    g = gov(tmp_path, per_minute=1000, per_day=0, clock=clock)
    for _ in range(8):
        assert await g.acquire()
    with caplog.at_level(logging.WARNING, logger="connectors.core.quota"):
        g.learn_429(retry_after=1, code="QuotaExceededError")
        g.learn_429(retry_after=1, code="QuotaExceededError")  # the same burst: one decrease
    assert g.status()["per_minute"] == 500
    lowered = [r.getMessage() for r in caplog.records if "lowering" in r.getMessage()]
    assert len(lowered) == 1 and "from 1000/min to 500/min" in lowered[0]
    for _ in range(10):  # 429s keep coming, each after a quiet moment: never below the floor
        clock.advance(15)
        g.learn_429(retry_after=1)
    assert g.status()["per_minute"] == 100  # a tenth of the configured rate
    clock.advance(301)  # additive increase: a tenth of the configured rate per quiet 5 min
    assert g.status()["per_minute"] == 200
    clock.advance(10 * 300)
    assert g.status()["per_minute"] == 1000


async def test_shares_reserve_part_of_the_day_per_connector(tmp_path):
    g = QuotaGovernor(
        tmp_path / "q.db", "k", 0, 100, FakeClock(), shares={"webhook": 0.4, "splunk": 0.3}
    )

    async def drain(connector):
        n = 0
        while await g.acquire(connector=connector):
            n += 1
        return n

    # Splunk may use its own 30 and the 30 nobody reserved; the webhook's 40 stay.
    assert await drain("splunk") == 60
    assert await drain("cli") == 0  # not listed: only the unreserved part, which is spent
    assert await drain("webhook") == 40
    status = g.status()
    assert status["shares"]["webhook"] == {"share": 0.4, "reserved": 40, "used": 40}
    assert status["shares"]["splunk"]["used"] == 60 and status["unreserved"] == 30
    assert status["left_today"] == 0


async def test_shares_refuse_with_a_reason(tmp_path):
    g = QuotaGovernor(tmp_path / "q.db", "k", 0, 10, FakeClock(), shares={"webhook": 1.0})
    with pytest.raises(Refused, match="connector cli has used its daily share"):
        await g.take(connector="cli")
    assert await g.acquire(connector="webhook")


async def test_waiting_is_said_once_per_wait_period(tmp_path, caplog):
    clock = FakeClock()
    g = QuotaGovernor(tmp_path / "q.db", "k", 4, 500, clock, tier="public")
    with caplog.at_level(logging.WARNING, logger="connectors.core.quota"):
        for _ in range(4):
            assert await g.acquire()
        assert all(await asyncio.gather(*(g.acquire() for _ in range(4))))  # one wait, 4 callers
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("rate-limited")]
    assert said == [
        "rate-limited: public tier 4/min, next slot in 60 s, 496 left today (4/min in use)"
    ]


async def test_a_long_retry_after_refuses_even_without_a_deadline(tmp_path):
    clock = FakeClock()
    g = gov(tmp_path, per_minute=0, per_day=0, clock=clock)
    g.learn_429(retry_after=6 * 3600)  # a daily quota: "come back after midnight"
    with pytest.raises(Refused, match="Retry-After"):
        await g.take()
    assert clock.now() == 1_767_225_600.0  # did not sit it out
    short = QuotaGovernor(tmp_path / "other.db", "k", 0, 0, clock)
    short.learn_429(retry_after=None)  # absent: 60 s, sat out by a caller without a deadline
    assert await short.take() == 0
    assert clock.now() == 1_767_225_600.0 + 60
