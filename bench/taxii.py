"""TAXII benchmark: paging 100,000 indicators through taxii2-client, first-page latency at
100,000 and 1,000,000 objects, the same paging against medallion 3.0.0 (memory backend) at 2,000
objects in the same run, STIX mapping speed against stix2 objects, and POST ingest of validated
objects against medallion's unvalidated ingest (memory backend), same envelopes, same run.
`python bench/taxii.py --ingest` runs only the ingest figure.

Prints one JSON object on its last line; compare the ratios, not absolute times.
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import stix2  # noqa: E402
from taxii2client.v21 import Collection, as_pages  # noqa: E402

from connectors.core import config, stix  # noqa: E402
from connectors.core.verdict import Enrichment, Verdict  # noqa: E402
from taxii.pagination import encode_next, us_to_rfc3339  # noqa: E402
from taxii.server import build_app  # noqa: E402
from tests.taxii.conftest import ServerThread  # noqa: E402
from tests.taxii.medallion_peer import PASSWORD, USER, medallion  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK") == "1"
N_PAGED = 10_000 if QUICK else 100_000
N_BIG = 100_000 if QUICK else 1_000_000
N_MEDALLION = 2_000
N_INGEST = 2_000  # medallion's memory backend scans the collection per object: keep it equal
INGEST_ENVELOPE = 250
PAGE = 100  # medallion's max page size; used for both servers
COLL = "1f0e8c6a-5b4d-4e3f-a2b1-c0d9e8f7a6b5"


def enrichments(n: int, start: int = 0):
    for i in range(start, start + n):
        v = f"h{i}.bench-example.com"
        yield Enrichment(
            value=v,
            kind="domain",
            verdict=Verdict.MALICIOUS,
            score=90,
            reason="bench",
            normalized=v,
            vt_id=v,
            link=f"https://www.virustotal.com/gui/domain/{v}",
        )


def mapping_rates() -> dict:
    now = time.time()
    items = list(enrichments(20_000))
    t0 = time.perf_counter()
    dicts = [stix.indicator(e, now) for e in items]
    ours = len(items) / (time.perf_counter() - t0)
    sample = dicts[:2_000]
    t0 = time.perf_counter()
    for d in sample:
        stix2.Indicator(**{k: v for k, v in d.items() if k not in ("type", "spec_version")})
    anchor = len(sample) / (time.perf_counter() - t0)
    return {
        "stix_dicts_per_s": round(ours),
        "stix2_objects_per_s": round(anchor),
        "stix_mapping_ratio": round(ours / anchor, 1),
    }


def fill(db_path: str, start: int, n: int, now: float) -> float:
    """Rows straight into the store's SQLite file with executemany (one transaction): a real
    indicator as the template, a distinct value, id and date_added per row. Returns seconds."""
    t0 = time.perf_counter()
    template = stix.indicator(next(enrichments(1, 10**9)), now)
    value = template["pattern"].split("'")[1]
    body = json.dumps(template, separators=(",", ":"))
    date0 = int(now * 1_000_000)

    def rows():
        for i in range(start, start + n):
            v = f"h{i}.bench-example.com"
            oid = f"indicator--{stix.uuid5(stix.pattern('domain', v))}"
            b = body.replace(value, v).replace(template["id"], oid)
            yield (COLL, oid, "indicator", "2.1", template["modified"], date0 + i, b)

    db = sqlite3.connect(db_path, timeout=30)
    db.execute("PRAGMA cache_size=-262144")  # a throw-away benchmark file: speed over safety
    db.execute("PRAGMA synchronous=OFF")
    with db:
        db.executemany("INSERT INTO objects VALUES (?, ?, ?, ?, ?, ?, ?)", rows())
    db.close()
    return time.perf_counter() - t0


def page_all(url: str, user: str, password: str) -> float:
    coll = Collection(url, user=user, password=password)
    t0 = time.perf_counter()
    count = sum(len(env.get("objects", [])) for env in as_pages(coll.get_objects, per_request=PAGE))
    dt = time.perf_counter() - t0
    return count / dt


def first_page_p50(url: str, auth: str, n: int = 25, query: str = "") -> float:
    times = []
    for _ in range(n):
        req = urllib.request.Request(
            f"{url}objects/?limit={PAGE}{query}",
            headers={"Accept": "application/taxii+json;version=2.1", "Authorization": auth},
        )
        t0 = time.perf_counter()
        urllib.request.urlopen(req, timeout=30).read()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def ingest_objects(n: int, now: float, start: int = 0) -> list:
    """Valid objects as producers send them: indicators of every kind we map (domains, IPs,
    URLs, hashes) and, for every third, a bare observable."""
    kinds = ["domain", "ipv4", "url", "sha256", "md5", "ipv6"]
    out = []
    for i in range(start, start + n):
        kind = kinds[i % len(kinds)]
        ip = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
        value = {"domain": f"i{i}.ingest-example.com", "ipv4": ip,
                 "url": f"https://i{i}.ingest-example.com/p?q={i}", "sha256": f"{i:064x}",
                 "md5": f"{i:032x}", "ipv6": f"2001:db8::{i:x}"}[kind]  # fmt: skip
        if i % 3 == 2:
            typ = {"domain": "domain-name", "ipv4": "ipv4-addr", "ipv6": "ipv6-addr"}.get(
                kind, "url"
            )
            sid = f"{typ}--{stix.uuid5(typ + value)}"
            out.append({"type": typ, "spec_version": "2.1", "id": sid, "value": value})
            continue
        enr = next(enrichments(1, i))
        out.append(stix.indicator(replace(enr, value=value, kind=kind, normalized=value), now))
    return out


def _post(url: str, auth: str, body: bytes) -> dict:
    req = urllib.request.Request(
        f"{url}objects/", data=body, method="POST",
        headers={"Accept": "application/taxii+json;version=2.1", "Authorization": auth,
                 "Content-Type": "application/taxii+json;version=2.1"},
    )  # fmt: skip
    status = json.loads(urllib.request.urlopen(req, timeout=120).read())
    assert status["failure_count"] == 0, status["failures"][:3]
    return status


def post_all(url: str, auth: str, bodies: list, warm: bytes) -> float:
    """Objects/s POSTing the pre-encoded envelopes one after another, after one untimed
    envelope of other objects (connections, caches, the credential check); every object stored."""
    _post(url, auth, warm)
    t0 = time.perf_counter()
    stored = sum(_post(url, auth, body)["success_count"] for body in bodies)
    return stored / (time.perf_counter() - t0)


def ingest_rates() -> dict:
    """Ingest at N_INGEST objects, and at 500 (medallion's memory backend compares each new
    object with every stored one, so its rate falls as the collection grows)."""
    from taxii.validate import problem

    out = ingest_rate(N_INGEST)
    small = ingest_rate(500)
    objs = ingest_objects(600, time.time())
    for label, fast in (("fast", True), ("stix2", False)):  # the check alone, in this process
        t0 = time.perf_counter()
        assert not any(problem(o, fast=fast) for o in objs)
        out[f"validate_{label}_objects_per_s"] = round(len(objs) / (time.perf_counter() - t0))
    keep = ("ours", "medallion", "ingest_ratio")
    out.update({f"{k}_at_500": v for k, v in small.items() if k.startswith(keep)})
    return out


def ingest_rate(n: int) -> dict:
    """POST ingest of the same valid envelopes to us (every object validated as STIX 2.1) and
    to medallion (stores what it is given), fresh stores, the same urllib client."""
    import base64

    from taxii.config import hash_password
    from taxii.validate import surely_valid

    now = time.time()
    objs = ingest_objects(n, now)
    bodies = [json.dumps({"objects": objs[i : i + INGEST_ENVELOPE]}).encode()
              for i in range(0, len(objs), INGEST_ENVELOPE)]  # fmt: skip
    warm = json.dumps({"objects": ingest_objects(50, now, 10**6)}).encode()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        doc = {
            "taxii": {
                "store": str(tmp_path / "ingest.db"),
                "collections": [{"id": COLL, "title": "ingest", "read": ["*"], "write": ["u"]}],
                "users": [{"name": "u", "password_hash": hash_password("p", 1000)}],
            }
        }
        settings = replace(config.from_mapping(doc, env={}), state_dir=str(tmp_path))
        srv = ServerThread(build_app(settings, None))
        srv.start()
        try:
            ours = post_all(f"{srv.url}/api/collections/{COLL}/",
                            "Basic " + base64.b64encode(b"u:p").decode(), bodies, warm)  # fmt: skip
        finally:
            srv.stop()
        with medallion(tmp_path) as (_, murl):
            auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            theirs = post_all(murl, auth, bodies, warm)
    return {
        "ingest_objects": n,
        "ingest_envelope": INGEST_ENVELOPE,
        "ingest_fast_path_share": round(sum(map(surely_valid, objs)) / len(objs), 3),
        "ours_validated_ingest_objects_per_s": round(ours),
        "medallion_unvalidated_ingest_objects_per_s": round(theirs),
        "ingest_ratio_vs_medallion": round(ours / theirs, 2),
    }


def main() -> dict:
    import base64

    out: dict = {"bench": "taxii", "quick": QUICK}
    out.update(mapping_rates())
    out.update(ingest_rates())
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        from taxii.config import hash_password

        doc = {
            "taxii": {
                "store": str(tmp_path / "taxii.db"),
                "max_page_size": 1000,
                "collections": [{"id": COLL, "title": "bench", "read": ["*"]}],
                "users": [{"name": "u", "password_hash": hash_password("p", 1000)}],
            }
        }
        settings = config.from_mapping(doc, env={})
        settings = replace(settings, state_dir=str(tmp_path))
        app = build_app(settings, None)
        srv = ServerThread(app)
        srv.start()
        auth = "Basic " + base64.b64encode(b"u:p").decode()
        url = f"{srv.url}/api/collections/{COLL}/"
        db_path = doc["taxii"]["store"]
        try:
            now = time.time() - 3600
            fill(db_path, 0, N_PAGED, now)
            ours = page_all(url, "u", "p")
            out.update(
                {
                    "ours_objects": N_PAGED,
                    "ours_paging_objects_per_s": round(ours),
                    f"ours_first_page_p50_ms_at_{N_PAGED}": round(first_page_p50(url, auth), 2),
                }
            )
            took = fill(db_path, N_PAGED, N_BIG - N_PAGED, now)
            out["fill_rows_per_s"] = round((N_BIG - N_PAGED) / took)
            out[f"ours_first_page_p50_ms_at_{N_BIG}"] = round(first_page_p50(url, auth), 2)
            # A poller near the end (added_after) and a deep `next` cost what the first page does.
            late = us_to_rfc3339(int(now * 1_000_000) + N_BIG - 500)
            out[f"ours_added_after_page_p50_ms_at_{N_BIG}"] = round(
                first_page_p50(url, auth, query=f"&added_after={late}"), 2
            )
            deep = encode_next(int(now * 1_000_000) + N_BIG // 2, "indicator--")
            out[f"ours_deep_page_p50_ms_at_{N_BIG}"] = round(
                first_page_p50(url, auth, query=f"&next={deep}"), 2
            )
        finally:
            srv.stop()
        with medallion(tmp_path) as (_, murl):
            coll = Collection(murl, user=USER, password=PASSWORD)
            objs = [stix.indicator(e, now) for e in enrichments(N_MEDALLION)]
            for i in range(0, N_MEDALLION, 500):
                coll.add_objects({"objects": objs[i : i + 500]})
            theirs = page_all(murl, USER, PASSWORD)
        out.update(
            {
                "medallion_objects": N_MEDALLION,
                "medallion_paging_objects_per_s": round(theirs),
                "paging_ratio_vs_medallion": round(ours / theirs, 1),
                "page_size": PAGE,
                "targets": {
                    "paging_ratio_vs_medallion": ">= 50",
                    "stix_mapping_ratio": ">= 10",
                    "ingest_ratio_vs_medallion": ">= 1",
                    "first_page_p50": "tens of ms at 1,000,000",
                    "basic_auth": "pbkdf2 hashes; verified credentials remembered",
                },
            }
        )
    return out


if __name__ == "__main__":
    if "--ingest" in sys.argv[1:]:
        res = {
            "bench": "taxii-ingest",
            **ingest_rates(),
            "targets": {"ingest_ratio_vs_medallion": ">= 1"},
        }
        print(json.dumps(res))
    else:
        print(json.dumps(main()))
