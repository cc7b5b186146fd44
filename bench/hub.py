"""Hub benchmark: POST /v1/enrich warm values/s in batches of 1,000 (and cold values/s against
raw vt-py asking the same emulator) through a real
`vtconnect serve --webhook` process, against a trivial aiohttp handler that parses the same
body and answers one small object per value (both servers in their own process, the load from
this one). The headline figure is the server's: the load reads each answer whole without
decoding it; the `_decoded` figures also decode every answer in the load process, which on
this 2-core machine takes CPU from the server. Prints one JSON object on its last line."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from _emulator_proc import emulator_process, free_port  # noqa: E402
from _support.raw_vtpy import raw_vtpy_seconds  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK") == "1"
BATCH = 1_000
ROUNDS = 10 if QUICK else 40
CONCURRENCY = 2
TOKEN = "bench-token-0123456789"
VALUES = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(BATCH)]
COLD = 1_000 if QUICK else 4_000  # values never asked before, half through the hub, half raw
RAW_CONCURRENCY = 8  # vt-py's anchor: as bench/core.py measures the cold path

TRIVIAL = """
import json, sys
from aiohttp import web
async def ok(request):
    doc = json.loads(await request.read())
    return web.json_response({"results": [{"value": v} for v in doc["values"]]})
app = web.Application()
app.router.add_post("/v1/enrich", ok)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


async def _wait_up(url: str) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(300):
            try:
                async with s.get(url + "/healthz"):
                    return
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


async def _rate(url: str, rounds: int, decode: bool) -> float:
    """Values per second over `rounds` batches, CONCURRENCY requests in flight. `decode`: the
    load also decodes every answer's JSON (in this process, on the same 2 cores as the
    server: a 1,000-value answer is ~2 MB, and decoding it costs about as much as serving
    it); otherwise each timed answer is read whole and checked against the warm reference."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    body = {"values": VALUES, "deadline": 300}
    async with aiohttp.ClientSession(headers=headers) as s:

        async def one(reference: Optional[bytes] = None) -> bytes:
            async with s.post(url + "/v1/enrich", json=body) as r:
                raw = await r.read()
                assert r.status == 200, r.status
                if decode or reference is None:
                    assert len(json.loads(raw)["results"]) == BATCH
                else:
                    assert len(raw) == len(reference), (len(raw), len(reference))
                return raw

        await one()  # warms the cache (and the connection)
        reference = await one()  # a warm answer
        started = time.perf_counter()
        for i in range(0, rounds, CONCURRENCY):
            n = min(CONCURRENCY, rounds - i)
            await asyncio.gather(*(one(reference) for _ in range(n)))
        return rounds * BATCH / (time.perf_counter() - started)


def _cold_values(tag: str, n: int) -> list:
    return [hashlib.sha256(f"{tag}-{i}".encode()).hexdigest() for i in range(n)]


async def _cold_rate(url: str, values: list) -> float:
    """Values per second for values the hub has never seen (each one a call to the emulator),
    sent in batches of 1,000, one request at a time (the hub spreads each batch itself)."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as s:
        started = time.perf_counter()
        for i in range(0, len(values), BATCH):
            chunk = values[i : i + BATCH]
            async with s.post(url + "/v1/enrich", json={"values": chunk, "deadline": 300}) as r:
                assert r.status == 200, r.status
                results = (await r.json())["results"]
                assert len(results) == len(chunk)
                assert not [x for x in results if x.get("verdict") == "error"], "cold errors"
        return len(values) / (time.perf_counter() - started)


def main() -> None:
    with emulator_process() as emu, tempfile.TemporaryDirectory() as tmp:
        port, anchor_port = free_port(), free_port()
        cfg = Path(tmp) / "vtconnect.toml"
        cfg.write_text(
            f'[core]\nstate_dir = "{tmp}/state"\n[quota]\ntier = "unlimited"\n'
            f"[webhook]\nport = {port}\n[[api.clients]]\nname = \"bench\"\n"
            f'token_sha256 = "{hashlib.sha256(TOKEN.encode()).hexdigest()}"\n'
        )
        env = dict(os.environ, VTCONNECT_CONFIG=str(cfg), VT_API_URL=emu, VT_API_KEY="k")
        exe = os.path.join(os.path.dirname(sys.executable), "vtconnect")
        procs = [
            subprocess.Popen([exe, "serve", "--webhook"], env=env, stderr=subprocess.DEVNULL),
            subprocess.Popen([sys.executable, "-c", TRIVIAL, str(anchor_port)]),
        ]
        try:
            hub, anchor = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{anchor_port}"
            asyncio.run(_wait_up(hub))
            asyncio.run(_wait_up(anchor))
            warm = asyncio.run(_rate(hub, ROUNDS, decode=False))
            trivial = asyncio.run(_rate(anchor, ROUNDS, decode=False))
            warm_decoded = asyncio.run(_rate(hub, ROUNDS, decode=True))
            trivial_decoded = asyncio.run(_rate(anchor, ROUNDS, decode=True))
            # Cold, alternating halves so that neither always runs first on a warming machine.
            ours, raw = _cold_values("cold-hub", COLD), _cold_values("cold-raw", COLD)
            half = COLD // 2
            t_cold = t_raw = 0.0
            for part in (slice(0, half), slice(half, None)):
                n = len(ours[part])
                t_raw += asyncio.run(raw_vtpy_seconds(emu, raw[part], RAW_CONCURRENCY))
                t_cold += n / asyncio.run(_cold_rate(hub, ours[part]))
        finally:
            for p in procs:
                p.terminate()
                p.wait(20)
    print(json.dumps({"bench": "hub", "batch": BATCH, "rounds": ROUNDS,
                      "enrich_warm_values_per_s": round(warm),
                      "trivial_handler_values_per_s": round(trivial),
                      "ratio": round(warm / trivial, 3),
                      "enrich_warm_decoded_values_per_s": round(warm_decoded),
                      "trivial_handler_decoded_values_per_s": round(trivial_decoded),
                      "enrich_cold_values_per_s": round(COLD / t_cold),
                      "raw_vtpy_cold_values_per_s": round(COLD / t_raw),
                      "cold_ratio": round(t_raw / t_cold, 3)}))  # fmt: skip


if __name__ == "__main__":
    main()
