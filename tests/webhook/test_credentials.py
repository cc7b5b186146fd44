"""VirusTotal rejecting the API key is our configuration problem, not the sender's: a
synchronous caller gets a clear 503 (not a 500), asynchronous alerts stay queued and are
enriched once the receiver restarts with a good key."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from connectors.core import config
from connectors.core.enricher import Enricher
from connectors.emulator.app import EmulatorConfig
from connectors.emulator.server import running_emulator
from connectors.webhook.app import build_app

from .test_receiver import BEARER, EICAR, SECRET, post

RAW = {
    "quota": {"tier": "unlimited"},
    "webhook": {"sources": [{"name": "b", "auth": "bearer", "secret": SECRET}]},
}


async def serve(emu_url: str, state: str, key: str):
    s = config.for_emulator(config.from_mapping(RAW, env={}), emu_url, state, api_key=key)
    enricher = Enricher(s, connector="webhook")
    runner = web.AppRunner(build_app(s, enricher), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"

    async def stop() -> None:
        await runner.cleanup()
        await enricher.aclose()
        enricher.close()

    return url, stop


async def job_state(url: str, jid: str) -> dict:
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{url}/v1/jobs/{jid}", headers={"Authorization": f"Bearer {SECRET}"}) as r,
    ):
        assert r.status == 200
        return await r.json()


async def test_rejected_key_is_503_then_jobs_wait_for_a_good_key(tmp_path):
    emu_cfg = EmulatorConfig(accept_any_key=False, keys={"good-key": "unlimited"})
    async with running_emulator(config=emu_cfg) as emu:
        url, stop = await serve(emu.url, str(tmp_path), "wrong-key")
        try:
            status, answer = await post(url, "/v1/alerts/generic?wait=5", {"md5": EICAR}, BEARER)
            assert status == 503 and answer["error"] == "credentials_rejected", answer
            status, answer = await post(url, "/v1/alerts/generic", {"md5": EICAR}, BEARER)
            assert status == 202
            jid = answer["job"]
            await asyncio.sleep(0.5)  # the worker tried and put it back
            assert (await job_state(url, jid))["state"] == "queued"
        finally:
            await stop()  # returns promptly although the worker is backing off
        url, stop = await serve(emu.url, str(tmp_path), "good-key")
        try:
            for _ in range(100):
                job = await job_state(url, jid)
                if job["state"] == "done":
                    break
                await asyncio.sleep(0.05)
            assert job["state"] == "done", job
            enrichment = job["result"]["alerts"][0]["enrichment"]
            assert enrichment["verdict"] == "malicious" and enrichment["is_risky"] is True
        finally:
            await stop()
