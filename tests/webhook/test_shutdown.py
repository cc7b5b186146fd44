"""Graceful shutdown: the job in hand finishes within the grace period, or goes back to the queue
(never left "running"), and a restart on the same outbox completes it."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from connectors.core import config
from connectors.core.enricher import Enricher
from connectors.emulator.app import EmulatorConfig
from connectors.emulator.server import running_emulator
from connectors.webhook.app import build_app
from connectors.webhook.outbox import SQLiteOutbox as Outbox

TOKEN = "shutdown-token-0123456789"


async def start(s, enricher):
    runner = web.AppRunner(build_app(s, enricher), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"


async def until(url, jid, states):
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        for _ in range(300):
            async with http.get(f"{url}/v1/jobs/{jid}") as r:
                job = await r.json()
            if job["state"] in states:
                return job
            await asyncio.sleep(0.02)
    raise AssertionError(job)


async def test_finish_within_grace_else_requeue(tmp_path):
    slow = EmulatorConfig(faults={"latency_ms": 1000})  # each VirusTotal answer takes 1 s
    async with running_emulator(config=slow) as emu:
        for grace, hash_, final in ((5.0, "a" * 64, "done"), (0.1, "b" * 64, "queued")):
            raw = {"quota": {"tier": "unlimited"}, "webhook": {"shutdown_grace": grace,
                   "sources": [{"name": "s", "auth": "bearer", "secret": TOKEN}]}}  # fmt: skip
            base = config.from_mapping(raw, env={})
            s = config.for_emulator(base, emu.url, str(tmp_path / str(grace)))
            enricher = Enricher(s, connector="webhook")
            try:
                runner, url = await start(s, enricher)
                async with (
                    aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as h,
                    h.post(f"{url}/v1/alerts/generic", json={"hash": hash_}) as r,
                ):
                    jid = (await r.json())["job"]
                await until(url, jid, ("running",))
                await runner.cleanup()  # as on SIGTERM
                outbox = Outbox(s.state_path / "webhook.db")
                job = outbox.get(jid)
                outbox.close()
                assert job is not None and job["state"] == final, (grace, job)
                if final == "queued":  # a restart on the same outbox finishes it
                    runner, url = await start(s, enricher)
                    job = await until(url, jid, ("done",))
                    obs = job["result"]["alerts"][0]["enrichment"]["observables"]
                    assert obs[0]["value"] == hash_
                    await runner.cleanup()
            finally:
                await enricher.aclose()
                enricher.close()
