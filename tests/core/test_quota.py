from __future__ import annotations

import asyncio
import multiprocessing
import time

from connectors.core.clock import FakeClock
from connectors.core.quota import Priority, QuotaGovernor
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


async def test_unlimited_never_touches_disk(tmp_path):
    g = gov(tmp_path, per_minute=0, per_day=0)
    assert all([await g.acquire() for _ in range(100)])
    assert not (tmp_path / "q.db").exists()


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
