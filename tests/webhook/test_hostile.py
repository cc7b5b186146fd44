"""Hostile requests over HTTP that once slipped past the checks: each is a clear 4xx, nothing is
stored; and a synchronous answer marks what is not ready as pending."""

from __future__ import annotations

import json

import aiohttp
from aiohttp import web

from .test_receiver import BEARER, SPLUNK, WHSEC, post


async def test_each_is_a_clear_4xx(receiver):
    url, runner = await receiver()
    deep_in_string = json.dumps("[" * 100_000 + "]" * 100_000).encode()
    status, resp = await post(url, "/v1/alerts/generic?source=bearer", deep_in_string, BEARER)
    assert status == 400 and "nested deeper" in resp["message"]
    for stamp in ("\u00b2", "9" * 5000, "-1", "1e9"):  # digits to str.isdigit(), not to int()
        headers = {"webhook-id": "m1", "webhook-timestamp": stamp, "webhook-signature": "v1,x"}
        status, resp = await post(url, "/v1/alerts/generic?source=std", b"{}", headers)
        assert status == 401 and "webhook-timestamp" in resp["message"], (stamp, resp)
    for wait in ("nan", "inf", "-1", "0", "1e400"):
        path = f"/v1/alerts/splunk?source=bearer&wait={wait}"
        status, resp = await post(url, path, SPLUNK, BEARER)
        assert status == 400 and resp["error"] == "bad_wait", wait
    async with aiohttp.ClientSession() as s, s.get(url + "/healthz") as r:
        assert (await r.json())["jobs"] == {}  # none of the above left a job behind
    assert WHSEC  # (the std source above is configured with it)


async def test_sync_marks_what_is_not_ready_as_pending(tmp_path):
    """VirusTotal (the emulator) answering slower than ?wait: the alerts come back with their
    indicators marked pending instead of an error or a late answer."""
    from connectors.core import config
    from connectors.core.enricher import Enricher
    from connectors.emulator.app import EmulatorConfig
    from connectors.emulator.server import running_emulator
    from connectors.webhook.app import build_app

    raw = {"quota": {"tier": "unlimited"}, "webhook": {"sources": [
        {"name": "b", "auth": "bearer", "secret": BEARER["Authorization"][7:]}]}}  # fmt: skip
    slow = EmulatorConfig(faults={"latency_ms": 1500})
    async with running_emulator(config=slow) as emu:
        s = config.for_emulator(config.from_mapping(raw, env={}), emu.url, str(tmp_path))
        enricher = Enricher(s, connector="webhook")
        runner = web.AppRunner(build_app(s, enricher), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        try:
            lines = [json.dumps({"hash": f"{i:064x}"}) for i in range(5)]
            body = "\n".join(lines).encode()
            status, resp = await post(url, "/v1/alerts/generic?wait=0.3", body, BEARER)
            assert status == 200 and len(resp["alerts"]) == 5
            for alert in resp["alerts"]:
                e = alert["enrichment"]
                assert e["pending"] == 1 and e["observables"][0]["pending"] is True, e
                assert e["verdict"] == "none" and e["is_risky"] is False
        finally:
            await runner.cleanup()
            await enricher.aclose()
            enricher.close()
