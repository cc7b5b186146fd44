"""Quota ledger benchmark: slots taken per second through QuotaGovernor.take + sent (what every
request that leaves costs), on the SQLite ledger and on the PostgreSQL one, by one host and by
four hosts at once (four threads, each with its own ledger instance, as four processes on four
hosts would be); and the unlimited tier's per-request cooldown read.

PostgreSQL is the throw-away PostgreSQL 18 server the tests use (tests/pg.py: unix socket,
fsync off). A premium-sized budget (no slot is ever refused) so the figure is the ledger's own
cost. Prints one JSON object on its last line; compare ratios, not times.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.core.quota import QuotaGovernor  # noqa: E402
from tests.pg import PostgresServer  # noqa: E402

N = int(os.environ.get("BENCH_LEDGER_N", "2000"))  # slots per host
PER_MINUTE, PER_DAY = 10_000_000, 1_000_000_000


def takes_per_s(target: str, hosts: int, unlimited: bool = False) -> float:
    limits = (0, 0) if unlimited else (PER_MINUTE, PER_DAY)
    governors = [QuotaGovernor(target, "bench-key", *limits) for _ in range(hosts)]
    governors[0].status()  # schema in place before the clock starts
    start = threading.Barrier(hosts + 1)
    done: List[float] = []

    def host(g: QuotaGovernor) -> None:
        async def run() -> None:
            for _ in range(N):
                g.sent(await g.take())

        start.wait()
        asyncio.run(run())
        done.append(time.perf_counter())

    threads = [threading.Thread(target=host, args=(g,)) for g in governors]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = max(done) - t0
    for g in governors:
        g.close()
    return hosts * N / elapsed


def main() -> None:
    server = PostgresServer()
    url = server.start()
    results = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            targets: dict = {"sqlite": lambda n: str(Path(tmp) / f"quota-{n}.db"),
                             "postgres": lambda n: url}  # fmt: skip
            run = 0
            for name, target in targets.items():
                make: Callable[[int], str] = target
                for hosts in (1, 4):
                    run += 1
                    rate = takes_per_s(make(run), hosts)
                    results[f"{name}_takes_per_s_{hosts}_host{'s' if hosts > 1 else ''}"] = (
                        round(rate)
                    )
                run += 1
                results[f"{name}_unlimited_takes_per_s"] = round(takes_per_s(make(run), 1, True))
    finally:
        server.stop()
    results["postgres_vs_sqlite_1_host"] = round(
        results["postgres_takes_per_s_1_host"] / results["sqlite_takes_per_s_1_host"], 2
    )
    results["slots_per_host"] = N
    print(json.dumps(results))


if __name__ == "__main__":
    main()
