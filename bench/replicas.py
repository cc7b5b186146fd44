"""Scale-out benchmark, second part: one vs two `vtconnect serve --webhook --taxii` replicas on
one PostgreSQL database (separate state dirs; the load spread round-robin over the replicas,
with the same total concurrency in both layouts), on this 2-core machine where the database,
the emulator and the load share the cores with the replicas:

(a) webhook durable authenticated accepts/s, as bench/webhook.py measures them, with its
    trivial aiohttp handler as the anchor (one handler, and two behind the same round-robin);
(b) POST /v1/enrich warm values/s in batches of 1,000, as bench/hub.py measures it, with its
    trivial handler as the anchor (one, and two round-robin);
(c) TAXII full paging objects/s with taxii2-client, each page asked of the next replica with
    the previous replica's `next` token.

PostgreSQL is the throw-away server of tests/pg.py. BENCH_QUICK=1: a short run. Prints one
JSON object on its last line; compare ratios (two/one), not times.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import tempfile
import time
from itertools import count
from pathlib import Path
from typing import Dict, List, Optional
from urllib.parse import urlsplit

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import hub  # noqa: E402
import scale  # noqa: E402
import webhook  # noqa: E402
from _emulator_proc import emulator_process, free_port  # noqa: E402
from taxii2client.v21 import Collection, as_pages  # noqa: E402

from taxii.config import hash_password  # noqa: E402
from tests.pg import PostgresServer  # noqa: E402
from tests.processes import Served, env_for  # noqa: E402

QUICK = scale.QUICK
N_ACCEPT = webhook.N_ACCEPT
ROUNDS = hub.ROUNDS
N_OBJECTS = 10_000 if QUICK else 100_000
TOKEN = webhook.TOKEN
assert hub.TOKEN == TOKEN  # one bearer token for the alert source and the hub client


def write_config(path: Path) -> Path:
    path.write_text(
        '[quota]\ntier = "unlimited"\n'
        "[webhook]\nport = 0\n"
        f'[[webhook.sources]]\nname = "b"\nformat = "auto"\nauth = "bearer"\nsecret = "{TOKEN}"\n'
        "rate_per_minute = 10000000\nmax_body_bytes = 1048576\n"
        f'[[api.clients]]\nname = "bench"\n'
        f'token_sha256 = "{hashlib.sha256(TOKEN.encode()).hexdigest()}"\n'
        "[taxii]\nport = 0\nmax_page_size = 1000\npoll_seconds = 3600\n"
        f'[[taxii.collections]]\nid = "{scale.COLL}"\ntitle = "bench"\nread = ["u"]\n'
        f'[[taxii.users]]\nname = "u"\npassword_hash = "{hash_password("p", 1000)}"\n'
    )
    return path


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def accept_rate(urls: List[str], n: int, offset: int) -> float:
    """bench/webhook.py's accept_rate, request i to urls[i % len(urls)]; alert ids from
    `offset` on, so no run re-sends an alert another one sent."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    sem = asyncio.Semaphore(webhook.CONCURRENCY)
    async with aiohttp.ClientSession(headers=headers) as s:

        async def one(i: int) -> None:
            async with sem, s.post(urls[i % len(urls)], data=webhook.alert(offset + i)) as r:
                await r.read()
                assert r.status in (200, 202), r.status

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return n / (time.perf_counter() - t0)


async def enrich_rate(urls: List[str], rounds: int) -> float:
    """bench/hub.py's warm figure (answers read whole, not decoded), batch i to
    urls[i % len(urls)], hub.CONCURRENCY batches in flight in all."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    body = {"values": hub.VALUES, "deadline": 300}
    async with aiohttp.ClientSession(headers=headers) as s:

        async def one(url: str, reference: Optional[int] = None) -> int:
            async with s.post(url + "/v1/enrich", json=body) as r:
                raw = await r.read()
                assert r.status == 200, r.status
                if reference is None:
                    assert len(json.loads(raw)["results"]) == hub.BATCH
                else:
                    assert len(raw) == reference, (len(raw), reference)
                return len(raw)

        references = {}
        for url in urls:  # warms the cache and each replica's connection
            await one(url)
            references[url] = await one(url)
        turn = count()
        started = time.perf_counter()
        for i in range(0, rounds, hub.CONCURRENCY):
            picked = [urls[next(turn) % len(urls)] for _ in range(min(hub.CONCURRENCY, rounds - i))]
            await asyncio.gather(*(one(u, references[u]) for u in picked))
        return rounds * hub.BATCH / (time.perf_counter() - started)


def paging_rate(urls: List[str]) -> float:
    """Full paging through taxii2-client, page k from replica k % len(urls) with the token the
    previous page's replica issued."""
    colls = [Collection(f"{u}/api/collections/{scale.COLL}/", user="u", password="p") for u in urls]
    turn = count()

    def get_objects(**kwargs):
        return colls[next(turn) % len(colls)].get_objects(**kwargs)

    t0 = time.perf_counter()
    got = sum(len(p.get("objects", [])) for p in as_pages(get_objects, per_request=scale.PAGE))
    elapsed = time.perf_counter() - t0
    assert got == N_OBJECTS, got
    return got / elapsed


async def drain(urls: List[str]) -> None:
    for url in urls:  # the accepted jobs are enriched before the next figure is measured
        await webhook.drain(url + "/healthz")


def measure(webhooks: List[str], taxiis: List[str], offset: int) -> Dict[str, float]:
    alerts = [u + "/v1/alerts/elastic" for u in webhooks]
    out = {"webhook_accept_per_s": asyncio.run(accept_rate(alerts, N_ACCEPT, offset))}
    asyncio.run(drain(webhooks))
    out["enrich_warm_values_per_s"] = asyncio.run(enrich_rate(webhooks, ROUNDS))
    out["taxii_paging_objects_per_s"] = paging_rate(taxiis)
    return out


def anchors(tmp: Path) -> Dict[str, float]:
    """The trivial aiohttp handlers of bench/webhook.py and bench/hub.py: one process each,
    then two behind the same round-robin (what a second process adds with nothing shared)."""
    out: Dict[str, float] = {}
    ports = {name: [free_port(), free_port()] for name in ("webhook", "hub")}
    procs = [webhook.start(webhook.TRIVIAL, str(p)) for p in ports["webhook"]]
    procs += [webhook.start(hub.TRIVIAL, str(p)) for p in ports["hub"]]
    try:
        w = [f"http://127.0.0.1:{p}/v1/alerts/elastic" for p in ports["webhook"]]
        h = [f"http://127.0.0.1:{p}" for p in ports["hub"]]
        for u in w:
            asyncio.run(webhook.wait_up(u))
        for u in h:
            asyncio.run(hub._wait_up(u))
        for k, label in ((1, "one"), (2, "two")):
            out[f"trivial_webhook_accept_per_s_{label}"] = asyncio.run(
                accept_rate(w[:k], N_ACCEPT, 0)
            )
            out[f"trivial_enrich_values_per_s_{label}"] = asyncio.run(enrich_rate(h[:k], ROUNDS))
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
    return out


def main() -> dict:
    out: dict = {"bench": "replicas", "quick": QUICK, "accepts": N_ACCEPT,
                 "concurrency_accepts": webhook.CONCURRENCY, "enrich_batch": hub.BATCH,
                 "enrich_rounds": ROUNDS, "concurrency_enrich": hub.CONCURRENCY,
                 "taxii_objects": N_OBJECTS, "page_size": scale.PAGE}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        cfg = write_config(tmp / "vtconnect.toml")
        pg = PostgresServer()
        db = pg.start()
        replicas: List[Served] = []
        try:
            with emulator_process() as emu:

                def replica(name: str) -> Dict[str, str]:
                    env = dict(env_for(cfg, emu, tmp / name), VTCONNECT_DATABASE=db)
                    replicas.append(Served(["serve", "--webhook", "--taxii"], env,
                                           tmp / f"{name}.log"))  # fmt: skip
                    urls = replicas[-1].wait_listening(2)
                    return {k: origin(v) for k, v in urls.items()}

                a = replica("a")
                scale.fill_postgres(db)(0, N_OBJECTS, int((time.time() - 3600) * 1_000_000))
                one = measure([a["webhook"]], [a["taxii"]], 0)
                b = replica("b")
                two = measure([a["webhook"], b["webhook"]], [a["taxii"], b["taxii"]], N_ACCEPT)
                for r in replicas:
                    r.stop()
                out.update({k: round(v) for k, v in anchors(tmp).items()})
        finally:
            for r in replicas:
                r.stop()
            pg.stop()
    for key in one:
        out[f"{key}_one"], out[f"{key}_two"] = round(one[key]), round(two[key])
        out[f"{key}_ratio_two_vs_one"] = round(two[key] / one[key], 2)
    for key in ("trivial_webhook_accept_per_s", "trivial_enrich_values_per_s"):
        out[f"{key}_ratio_two_vs_one"] = round(out[f"{key}_two"] / out[f"{key}_one"], 2)
    out["webhook_accept_ratio_vs_trivial_one"] = round(
        out["webhook_accept_per_s_one"] / out["trivial_webhook_accept_per_s_one"], 3
    )
    out["enrich_warm_ratio_vs_trivial_one"] = round(
        out["enrich_warm_values_per_s_one"] / out["trivial_enrich_values_per_s_one"], 3
    )
    out["cores"] = os.cpu_count()
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
