"""Scale-out benchmark, first part: the TAXII server on SQLite vs on PostgreSQL (one replica
each, same process layout): full paging through taxii2-client, first-page and deep-`next` p50
at N objects (then at BIG objects). The anchor is the SQLite store measured in the same run.

PostgreSQL is the throw-away PostgreSQL 18 server the tests use (tests/pg.py: unix socket,
fsync off; reads are what is measured). BENCH_QUICK=1: 10,000 / 100,000 objects instead of
100,000 / 1,000,000. Prints one JSON object on its last line; compare ratios, not times.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator, Tuple
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from taxii2client.v21 import Collection, as_pages  # noqa: E402

from connectors.core import config, stix  # noqa: E402
from connectors.core.verdict import Enrichment, Verdict  # noqa: E402
from taxii.config import hash_password  # noqa: E402
from taxii.pagination import encode_next  # noqa: E402
from taxii.server import STORE, build_app  # noqa: E402
from tests.pg import PostgresServer  # noqa: E402
from tests.taxii.conftest import ServerThread  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK") == "1"
N = 10_000 if QUICK else 100_000
BIG = 100_000 if QUICK else 1_000_000
PAGE = 100
COLL = "1f0e8c6a-5b4d-4e3f-a2b1-c0d9e8f7a6b5"
AUTH = "Basic " + base64.b64encode(b"u:p").decode()
Row = Tuple[str, str, str, str, str, int, str]


def rows(start: int, n: int, date0: int) -> Iterator[Row]:
    """Real indicators as stored rows: a distinct value, id and date_added each."""
    v0 = "h0.template.example"
    template = stix.indicator(
        Enrichment(value=v0, kind="domain", verdict=Verdict.MALICIOUS, score=90, reason="bench",
                   normalized=v0, vt_id=v0, link="https://www.virustotal.com/gui/domain/x"),
        date0 / 1e6,
    )  # fmt: skip
    body = json.dumps(template, separators=(",", ":"))
    for i in range(start, start + n):
        v = f"h{i}.bench-example.com"
        oid = f"indicator--{stix.uuid5(stix.pattern('domain', v))}"
        b = body.replace(v0, v).replace(template["id"], oid)
        yield (COLL, oid, "indicator", "2.1", template["modified"], date0 + i, b)


def fill_sqlite(path: str) -> Callable[[int, int, int], None]:
    def fill(start: int, n: int, date0: int) -> None:
        db = sqlite3.connect(path, timeout=30)
        db.execute("PRAGMA synchronous=OFF")
        with db:
            db.executemany("INSERT INTO objects VALUES (?, ?, ?, ?, ?, ?, ?)",
                           rows(start, n, date0))  # fmt: skip
        db.close()

    return fill


def fill_postgres(url: str) -> Callable[[int, int, int], None]:
    import psycopg

    def fill(start: int, n: int, date0: int) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            # One version per object: each row is its object's latest.
            copy_sql = ("COPY taxii_objects (collection, id, type, spec_version, modified, "
                        "date_added, body, latest) FROM STDIN")  # fmt: skip
            with conn.transaction(), conn.cursor().copy(copy_sql) as copy:
                for row in rows(start, n, date0):
                    copy.write_row((*row, True))
            # What autovacuum would do next anyway: done now, it does not compete with the
            # measurements for the two cores (SQLite has no such background work).
            conn.execute("VACUUM (ANALYZE) taxii_objects")

    return fill


def page_all(url: str) -> float:
    coll = Collection(url, user="u", password="p")
    t0 = time.perf_counter()
    count = sum(len(env.get("objects", [])) for env in as_pages(coll.get_objects, per_request=PAGE))
    return count / (time.perf_counter() - t0)


def p50_ms(url: str, query: str = "", n: int = 25, keep_alive: bool = False) -> float:
    """Median wall time of one page as a client sees it: each request on a new connection (as
    urllib makes them), or all on one kept-alive connection (as taxii2-client's session)."""
    path = f"{urlsplit(url).path}objects/?limit={PAGE}{query}"
    headers = {"Accept": "application/taxii+json;version=2.1", "Authorization": AUTH}
    conn = http.client.HTTPConnection(urlsplit(url).netloc, timeout=60) if keep_alive else None
    times = []
    for i in range(n + 1):
        t0 = time.perf_counter()
        if conn is not None:
            conn.request("GET", path, headers=headers)
            answer = conn.getresponse()
            assert answer.status == 200 and answer.read(), answer.status
        else:
            req = urllib.request.Request(f"{url}objects/?limit={PAGE}{query}", headers=headers)
            urllib.request.urlopen(req, timeout=60).read()
        if i:  # the first one opens the connection
            times.append(time.perf_counter() - t0)
    if conn is not None:
        conn.close()
    return round(statistics.median(times) * 1000, 2)


def query_p50_ms(store: Any, n: int = 25) -> float:
    """Median time of the first page's store query alone, in the server's process."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        store.query(COLL, limit=PAGE)
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times) * 1000, 2)


def measure(tmp: Path, name: str, database: str, fill_for: Callable) -> dict:
    users = [{"name": "u", "password_hash": hash_password("p", 1000)}]
    collections = [{"id": COLL, "title": "bench", "read": ["*"]}]
    doc = {
        "core": {"state_dir": str(tmp / name), "database": database},
        "taxii": {"max_page_size": 1000, "collections": collections, "users": users},
    }
    settings = config.from_mapping(doc, env={})
    srv = ServerThread(build_app(settings, None))  # creates the store (and its tables)
    srv.start()
    url = f"{srv.url}/api/collections/{COLL}/"
    fill = fill_for(database or str(tmp / name / "taxii.db"))
    date0 = int((time.time() - 3600) * 1_000_000)
    out = {}
    try:
        t0 = time.perf_counter()
        fill(0, N, date0)
        out["fill_rows_per_s"] = round(N / (time.perf_counter() - t0))
        out["paging_objects_per_s"] = round(page_all(url))
        out[f"first_page_p50_ms_at_{N}"] = p50_ms(url)
        fill(N, BIG - N, date0)
        out[f"first_page_p50_ms_at_{BIG}"] = p50_ms(url)
        # Where the time goes: the same page on a kept-alive connection, and the query alone.
        out[f"first_page_keepalive_p50_ms_at_{BIG}"] = p50_ms(url, keep_alive=True)
        out[f"first_page_query_p50_ms_at_{BIG}"] = query_p50_ms(srv.app[STORE])
        deep = encode_next(date0 + BIG // 2, "indicator--")
        out[f"deep_page_p50_ms_at_{BIG}"] = p50_ms(url, f"&next={deep}")
    finally:
        srv.stop()
    return out


def main() -> dict:
    out: dict = {"bench": "scale", "quick": QUICK, "objects_paged": N, "page_size": PAGE}
    with tempfile.TemporaryDirectory() as tmp:
        pg = PostgresServer()
        url = pg.start()
        try:
            sqlite = measure(Path(tmp), "sqlite", "", fill_sqlite)
            postgres = measure(Path(tmp), "postgres", url, fill_postgres)
        finally:
            pg.stop()
    out["sqlite"], out["postgres"] = sqlite, postgres
    out["paging_ratio_postgres_vs_sqlite"] = round(
        postgres["paging_objects_per_s"] / sqlite["paging_objects_per_s"], 2
    )
    key = f"first_page_p50_ms_at_{BIG}"
    out["first_page_ratio_postgres_vs_sqlite"] = round(postgres[key] / sqlite[key], 2)
    out["targets"] = {"paging_ratio_postgres_vs_sqlite": ">= 0.5",
                      f"postgres_{key}": "< 10"}  # fmt: skip
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
