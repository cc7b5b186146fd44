"""Webhook benchmark: durable authenticated accepts per second against a trivial aiohttp handler
(both servers in their own process, the load from this one), and synchronous enrichment latency
with a warm cache at a fixed 200 alerts/s. Prints one JSON object on its last line."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from _emulator_proc import emulator_process  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK") == "1"
N_ACCEPT = 1_000 if QUICK else 5_000
SYNC_SECONDS = 3 if QUICK else 10
CONCURRENCY = 32
TOKEN = "bench-token-0123456789"

TRIVIAL = """
import sys
from aiohttp import web
async def ok(request):
    await request.read()
    return web.json_response({"ok": True}, status=202)
app = web.Application()
app.router.add_post("/v1/alerts/{format}", ok)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""

RECEIVER = """
import asyncio, sys
from dataclasses import replace
from connectors.core import config
from connectors.core.enricher import Enricher
from connectors.webhook.app import build_app
from aiohttp import web
url, state, port, token = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
raw = {"webhook": {"sources": [{"name": "b", "format": "auto", "auth": "bearer",
                                "secret": token, "rate_per_minute": 10000000,
                                "max_body_bytes": 1048576}]}}
s = config.for_emulator(config.from_mapping({"quota": {"tier": "unlimited"}}, env={}), url, state)
s = replace(s, raw=raw)
async def main():
    e = Enricher(s, connector="webhook")
    runner = web.AppRunner(build_app(s, e), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()
asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=str(ROOT),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def wait_up(url: str) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(200):
            try:
                async with s.post(url, data=b"{}") as r:
                    await r.read()
                    return
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)


def alert(i: int) -> bytes:
    return json.dumps(
        {
            "context": {
                "alerts": [
                    {
                        "kibana.alert.uuid": f"bench-{i}",
                        "destination": {"ip": "203.0.113.66"},
                        "file": {"hash": {"md5": f"{i % 50:032x}"}},
                    }
                ]
            }
        }
    ).encode()


async def accept_rate(url: str, n: int) -> float:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    sem = asyncio.Semaphore(CONCURRENCY)
    async with aiohttp.ClientSession(headers=headers) as s:

        async def one(i: int) -> None:
            async with sem, s.post(url, data=alert(i)) as r:
                await r.read()
                assert r.status in (200, 202), r.status

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return n / (time.perf_counter() - t0)


async def drain(health_url: str) -> float:
    """Wait until the accepted jobs are enriched: the sync scenario is measured on its own."""
    t0 = time.perf_counter()
    async with aiohttp.ClientSession() as s:
        for _ in range(1200):
            async with s.get(health_url) as r:
                jobs = (await r.json())["jobs"]
            if not jobs.get("queued") and not jobs.get("running"):
                break
            await asyncio.sleep(0.05)
    return time.perf_counter() - t0


async def sync_latency(url: str, seconds: float, rate: float = 200.0) -> dict:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    lat = []
    async with aiohttp.ClientSession(headers=headers) as s:
        for i in range(50):  # warm the cache with the indicators used below
            async with s.post(url + "?wait=10", data=alert(i)) as r:
                await r.read()

        async def one(i: int) -> None:
            t0 = time.perf_counter()
            async with s.post(url + "?wait=5", data=alert(i)) as r:
                await r.read()
            lat.append(time.perf_counter() - t0)

        tasks, start = [], time.perf_counter()
        for i in range(int(seconds * rate)):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(i)))
        await asyncio.gather(*tasks)
        achieved = len(lat) / (time.perf_counter() - start)
    lat.sort()
    return {
        "sync_alerts_per_s": round(achieved, 1),
        "sync_p50_ms": round(statistics.median(lat) * 1000, 2),
        "sync_p99_ms": round(lat[int(len(lat) * 0.99) - 1] * 1000, 2),
    }


async def main() -> dict:
    out: dict = {"bench": "webhook", "quick": QUICK}
    with emulator_process() as emu, tempfile.TemporaryDirectory() as state:
        p1, p2 = free_port(), free_port()
        trivial = start(TRIVIAL, str(p1))
        receiver = start(RECEIVER, emu, state, str(p2), TOKEN)
        try:
            t_url = f"http://127.0.0.1:{p1}/v1/alerts/elastic"
            r_url = f"http://127.0.0.1:{p2}/v1/alerts/elastic"
            await wait_up(t_url)
            await wait_up(r_url)
            anchor = await accept_rate(t_url, N_ACCEPT)
            ours = await accept_rate(r_url, N_ACCEPT)
            out.update(
                {
                    "accepts": N_ACCEPT,
                    "concurrency": CONCURRENCY,
                    "async_accept_per_s": round(ours),
                    "trivial_handler_per_s": round(anchor),
                    "accept_ratio": round(ours / anchor, 3),
                }
            )
            drained = await drain(f"http://127.0.0.1:{p2}/healthz")
            out["async_jobs_drained_s"] = round(drained, 2)
            out.update(await sync_latency(r_url, SYNC_SECONDS))
        finally:
            for p in (trivial, receiver):
                p.terminate()
                p.wait(10)
    out["targets"] = {"accept_ratio": ">= 0.3", "sync_p99_ms": "< 50 at 200 alerts/s"}
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
