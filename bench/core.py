"""Core benchmark: warm path, cold path and a simulated quota day.

Prints one JSON object on its last line. Each figure comes with its anchor, measured in the same
run on the same data, and the ratio (ours / anchor); compare ratios, not absolute times.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _emulator_proc import emulator_process  # noqa: E402
from _support.raw_vtpy import raw_vtpy_seconds  # noqa: E402

from connectors.core import config as config_mod  # noqa: E402
from connectors.core.clock import FakeClock  # noqa: E402
from connectors.core.enricher import Enricher  # noqa: E402
from connectors.core.quota import Priority, QuotaGovernor  # noqa: E402
from connectors.emulator.quota import TierQuota  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK") == "1"
WARM_TOTAL, WARM_DISTINCT = (20_000, 2_000) if QUICK else (100_000, 10_000)
COLD_DISTINCT = 500 if QUICK else 5_000
CONCURRENCY = 8


def sha256s(n: int, salt: str) -> list:
    return [hashlib.sha256(f"{salt}{i}".encode()).hexdigest() for i in range(n)]


def settings_for(url: str, state: str) -> config_mod.Settings:
    s = config_mod.for_emulator(config_mod.from_mapping({}, env={}), url, state)
    from dataclasses import replace

    return replace(
        s,
        quota=replace(s.quota, tier="unlimited"),
        virustotal=replace(s.virustotal, max_concurrency=CONCURRENCY),
    )


def best_of(n: int, fn) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


async def warm(url: str) -> dict:
    distinct = sha256s(WARM_DISTINCT, "warm")
    values = [distinct[(i * 7919) % WARM_DISTINCT] for i in range(WARM_TOTAL)]
    with tempfile.TemporaryDirectory() as state:
        enricher = Enricher(settings_for(url, state), connector="bench")
        await enricher.enrich(distinct)  # fills the SQLite cache (cold)
        await enricher.enrich(values)  # and the in-process memo
        table = {r.value: r for r in await enricher.enrich(distinct)}

        def bare() -> None:
            out = []
            for v in values:
                out.append(table[v])

        # Ours and the anchor alternate, best of 5 each: run as two blocks, the anchor alone
        # swung 1.7M-7.9M values/s between runs with the machine's state.
        loop_times, anchor_times = [], []
        for _ in range(5):
            t0 = time.perf_counter()
            results = await enricher.enrich(values)
            loop_times.append(time.perf_counter() - t0)
            anchor_times.append(best_of(1, bare))
        assert all(r.cached for r in results)
        ours, anchor = min(loop_times), min(anchor_times)
        # The same values answered by a fresh process: memo empty, SQLite warm.
        fresh = Enricher(settings_for(url, state), connector="bench")
        t0 = time.perf_counter()
        again = await fresh.enrich(values)
        sqlite_warm = time.perf_counter() - t0
        assert all(r.cached for r in again)
        await enricher.aclose()
        await fresh.aclose()
        enricher.close()
        fresh.close()
    return {
        "warm_observables": WARM_TOTAL,
        "warm_distinct": WARM_DISTINCT,
        "warm_obs_per_s": round(WARM_TOTAL / ours),
        "warm_anchor_dict_loop_obs_per_s": round(WARM_TOTAL / anchor),
        "warm_ratio": round(anchor / ours, 3),
        "warm_fresh_process_sqlite_obs_per_s": round(WARM_TOTAL / sqlite_warm),
    }


async def cold(url: str) -> dict:
    ours_values = sha256s(COLD_DISTINCT, "cold-ours")
    raw_values = sha256s(COLD_DISTINCT, "cold-raw")

    with tempfile.TemporaryDirectory() as state:
        enricher = Enricher(settings_for(url, state), connector="bench")
        await enricher.enrich(sha256s(50, "cold-warmup"))
        # Alternate the two loops over halves of the data so that neither always runs first
        # on a warming machine; compare the totals.
        half = COLD_DISTINCT // 2
        raw = ours = 0.0
        results = []
        for part in (slice(0, half), slice(half, None)):
            raw += await raw_vtpy_seconds(url, raw_values[part], CONCURRENCY)
            t0 = time.perf_counter()
            results += await enricher.enrich(ours_values[part])
            ours += time.perf_counter() - t0
        await enricher.aclose()
        enricher.close()
    errors = sum(r.verdict.value == "error" for r in results)
    return {
        "cold_observables": COLD_DISTINCT,
        "cold_concurrency": CONCURRENCY,
        "cold_obs_per_s": round(COLD_DISTINCT / ours),
        "cold_anchor_raw_vtpy_per_s": round(COLD_DISTINCT / raw),
        "cold_ratio": round(raw / ours, 3),
        "cold_errors": errors,
    }


async def quota_day() -> dict:
    """A day on a fake clock at the public tier, demand far above supply."""
    clock = FakeClock(start=1_767_225_600.0)  # 2026-01-01T00:00:00Z: a whole UTC day
    per_minute, per_day = 4, 500
    with tempfile.TemporaryDirectory() as state:
        gov = QuotaGovernor(Path(state) / "quota.db", "bench-key", per_minute, per_day, clock)
        vt_side = TierQuota(per_minute, per_day, clock=clock.now)
        start = clock.now()
        day_end = (start // 86400 + 1) * 86400  # the next 00:00 UTC
        seen_429 = granted = 0

        async def demand(priority: Priority) -> None:
            nonlocal seen_429, granted
            while clock.now() < day_end - 1:
                if await gov.acquire(priority, clock.now() + 30):
                    if clock.now() >= day_end:
                        break
                    if vt_side.take() is None:
                        granted += 1
                    else:
                        seen_429 += 1
                        gov.learn_429(vt_side.retry_after())
                else:
                    await clock.sleep(15)

        await asyncio.gather(
            *(
                demand(p)
                for p in (
                    Priority.INTERACTIVE,
                    Priority.ALERT,
                    Priority.BULK,
                    Priority.INTERACTIVE,
                    Priority.BACKGROUND,
                )
            )
        )
    return {
        "quota_sim_hours": round((day_end - start) / 3600, 2),
        "quota_429s": seen_429,
        "quota_granted": granted,
        "quota_budget_used_pct": round(100.0 * granted / per_day, 1),
    }


async def main() -> dict:
    out = {"bench": "core", "quick": QUICK}
    with emulator_process() as url:
        out.update(await warm(url))
        out.update(await cold(url))
    out.update(await quota_day())
    out["targets"] = {
        "warm_ratio": ">= 0.5",
        "cold_ratio": ">= 0.8",
        "quota_429s": 0,
        "quota_budget_used_pct": ">= 95",
    }
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
