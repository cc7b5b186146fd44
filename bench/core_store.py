"""The core store on SQLite vs on PostgreSQL, operation by operation, in batches of BATCH keys:
what the enricher's cache path costs on each backend. Cold reads (no in-process memory), stores
with their leases released, lease takes, verdict-log appends and a follower paging the log.

PostgreSQL is the throw-away PostgreSQL 18 server the tests use (tests/pg.py: unix socket,
fsync off). BENCH_QUICK=1: 20 batches instead of 100. Prints one JSON object on its last line;
compare ratios, not times.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.core.config import CacheSettings  # noqa: E402
from connectors.core.store import CacheEntry, CacheStore, LogRecord, open_cache  # noqa: E402
from tests.pg import PostgresServer  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK") == "1"
BATCHES = 20 if QUICK else 100
BATCH = 1000
REPORT = {"kind": "file", "id": "x" * 64, "stats": {"malicious": 40, "undetected": 30},
          "names": ["a.exe"], "tags": ["peexe"], "reputation": -30}  # fmt: skip


def per_s(n: int, fn: Callable[[int], None]) -> float:
    t0 = time.perf_counter()
    for b in range(BATCHES):
        fn(b)
    return round(n * BATCHES / (time.perf_counter() - t0))


def measure(store: CacheStore) -> Dict[str, float]:
    now = time.time()

    def keys(b: int) -> list:
        return [f"file:{b:04d}{i:060d}" for i in range(BATCH)]

    out: Dict[str, float] = {}
    out["take_leases_per_s"] = per_s(BATCH, lambda b: store.take_leases(keys(b), 30))

    def put(b: int) -> None:
        items = [(CacheEntry(k, "malicious", REPORT, now), [k.replace("file:", "md5:")])
                 for k in keys(b)]  # fmt: skip
        store.put_many(items, release=keys(b))

    out["put_many_per_s"] = per_s(BATCH, put)
    out["get_many_cold_per_s"] = per_s(BATCH, lambda b: store.get_many(keys(b)))

    def log(b: int) -> None:
        store.log([LogRecord(k, "sha256", k[5:], "malicious", 90, "bench", now) for k in keys(b)])

    out["log_rows_per_s"] = per_s(BATCH, log)
    cursor = 0

    def follow(b: int) -> None:
        nonlocal cursor
        rows = store.log_after(cursor, limit=BATCH)
        cursor = rows[-1][0]

    out["log_after_rows_per_s"] = per_s(BATCH, follow)
    return out


def main() -> dict:
    out: dict = {"bench": "core_store", "quick": QUICK, "batch": BATCH, "batches": BATCHES}
    settings = CacheSettings(lru_size=0)  # every read goes to the database
    with tempfile.TemporaryDirectory() as tmp:
        pg = PostgresServer()
        url = pg.start()
        try:
            for name, target in (("sqlite", str(Path(tmp) / "cache.db")), ("postgres", url)):
                store = open_cache(target, settings)
                try:
                    out[name] = measure(store)
                finally:
                    store.close()
        finally:
            pg.stop()
    out["ratio_postgres_vs_sqlite"] = {
        k: round(out["postgres"][k] / out["sqlite"][k], 2) for k in out["sqlite"]
    }
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
