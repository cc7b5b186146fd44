"""Callbacks: signed, retried with backoff, dead-lettered, replayed; the SSRF guard."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import replace

import aiohttp
from aiohttp import web
from click.testing import CliRunner

from connectors.cli import main
from connectors.core.enricher import Enricher
from connectors.webhook import auth
from connectors.webhook.app import build_app

TOKEN = "s3cret-token-0123456789"
WHSEC = "whsec_" + base64.b64encode(b"callback-key-0123456789abcdef!!").decode()
ALERT = {"sid": "scheduler_cb_1", "search_name": "x", "result": {"dest": "malware.wicar.org"}}


class Hook:
    """A loopback callback receiver that fails the first `failures` deliveries."""

    def __init__(self, failures: int) -> None:
        self.failures, self.calls, self.got = failures, 0, []

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        body = await request.read()
        if self.calls <= self.failures:
            return web.Response(status=503)
        self.got.append((dict(request.headers), body))
        return web.Response(status=204)


async def serve(app: web.Application):
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"


async def setup(settings, hook_url, **source):
    src = {
        "name": "s",
        "format": "splunk",
        "auth": "bearer",
        "secret": TOKEN,
        "callback_url": hook_url + "/hook",
        "callback_secret": WHSEC,
        "allow_http": True,
        "allow_private": True,
        "retry_base": 0.05,
        **source,
    }
    s = replace(settings, raw={"webhook": {"sources": [src]}})
    enricher = Enricher(s, connector="webhook")
    runner, url = await serve(build_app(s, enricher))
    return s, enricher, runner, url


async def post_alert(url):
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            url + "/v1/alerts/splunk", json=ALERT, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as r,
    ):
        return (await r.json())["job"]


async def job_state(url, jid, field, want, tries=200):
    job = {}
    for _ in range(tries):
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"{url}/v1/jobs/{jid}", headers={"Authorization": f"Bearer {TOKEN}"}) as r,
        ):
            job = await r.json()
        if job.get(field) == want:
            return job
        await asyncio.sleep(0.05)
    return job


async def test_signed_callback_after_failures(settings):
    hook = Hook(failures=2)
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    hook_runner, hook_url = await serve(app)
    _, enricher, runner, url = await setup(settings, hook_url)
    try:
        jid = await post_alert(url)
        job = await job_state(url, jid, "delivery", "delivered")
        assert job["delivery"] == "delivered" and job["attempts"] == 3
        headers, body = hook.got[0]
        assert len(hook.got) == 1 and headers["webhook-id"] == jid
        auth.verify("standard", WHSEC, headers, body)  # raises if the signature is wrong
        assert json.loads(body)["alerts"][0]["enrichment"]["is_risky"] is True
        async with aiohttp.ClientSession() as s, s.get(url + "/metrics") as r:
            text = await r.text()
        assert 'vtconnect_webhook_callbacks{state="delivered"} 1.0' in text
        assert 'vtconnect_webhook_callbacks{state="dead"} 0.0' in text
        assert 'vtconnect_webhook_jobs{state="done"} 1.0' in text
        assert 'vtconnect_webhook_jobs{state="running"} 0.0' in text  # not a stale last value
    finally:
        await runner.cleanup()
        await hook_runner.cleanup()
        await enricher.aclose()
        enricher.close()


async def test_dead_letter_then_replay(settings, tmp_path):
    hook = Hook(failures=10**6)
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    hook_runner, hook_url = await serve(app)
    s, enricher, runner, url = await setup(settings, hook_url, max_attempts=2)
    try:
        jid = await post_alert(url)
        job = await job_state(url, jid, "delivery", "dead")
        assert job["delivery"] == "dead" and job["attempts"] == 2
        assert job["last_error"] == "HTTP 503"
        hook.failures = 0
        cfg = tmp_path / "replay.toml"
        cfg.write_text(f'[core]\nstate_dir = "{s.state_path}"\n')
        r = CliRunner().invoke(
            main, ["--config", str(cfg), "webhook", "replay"], env={"VT_API_KEY": "k"}
        )
        assert r.exit_code == 0 and "1 callback(s) queued again" in r.output
        job = await job_state(url, jid, "delivery", "delivered")
        assert job["delivery"] == "delivered" and len(hook.got) == 1
    finally:
        await runner.cleanup()
        await hook_runner.cleanup()
        await enricher.aclose()
        enricher.close()


async def test_ssrf_guard_refuses_private_targets(settings):
    hook = Hook(failures=0)
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    hook_runner, hook_url = await serve(app)
    _, enricher, runner, url = await setup(settings, hook_url, allow_private=False, max_attempts=1)
    try:
        jid = await post_alert(url)
        job = await job_state(url, jid, "delivery", "dead")
        assert job["delivery"] == "dead" and "non-public address" in job["last_error"]
        assert hook.calls == 0  # never called
    finally:
        await runner.cleanup()
        await hook_runner.cleanup()
        await enricher.aclose()
        enricher.close()


def test_callback_config_is_checked():
    import pytest

    from connectors.core.config import ConfigError
    from connectors.webhook.config import load

    base = {"name": "s", "auth": "bearer", "secret": TOKEN}
    with pytest.raises(ConfigError, match="https"):
        load({"webhook": {"sources": [dict(base, callback_url="http://hooks.example.com/x")]}})
    with pytest.raises(ConfigError, match="whsec_"):
        load(
            {
                "webhook": {
                    "sources": [
                        dict(
                            base,
                            callback_url="https://hooks.example.com/x",
                            callback_secret="plain",
                        )
                    ]
                }
            }
        )


async def test_connections_never_reach_private_addresses():
    """The guard also runs on the addresses the connection itself resolves (a DNS answer that
    changes after the first check cannot reach a private address), and IP literals are checked
    before any connection."""
    import pytest

    from connectors.webhook import delivery
    from connectors.webhook.config import Source

    hook = Hook(failures=0)
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    hook_runner, hook_url = await serve(app)
    port = hook_url.rsplit(":", 1)[1]
    try:
        with pytest.raises(OSError, match="non-public address"):
            await delivery.PublicOnlyResolver().resolve("localhost", int(port))
        async with delivery.session(False) as guarded:
            with pytest.raises(aiohttp.ClientError):
                await guarded.post(f"http://localhost:{port}/hook", data=b"{}")
        async with (
            delivery.session(True) as open_session,
            open_session.post(f"http://localhost:{port}/hook", data=b"{}") as r,
        ):
            assert r.status == 204  # the same target when private addresses are allowed
        src = Source("s", callback_url=f"http://127.0.0.1:{port}/hook", allow_http=True)
        assert "non-public" in await delivery.target_problem(src)
        assert hook.calls == 1  # only the allowed call got through
    finally:
        await hook_runner.cleanup()
