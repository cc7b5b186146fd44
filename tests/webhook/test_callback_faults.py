"""A callback that breaks in a way nobody planned for (here: a URL whose port is out of range,
which the configuration now refuses at start, forced in after start) costs that one job its
delivery, never the delivery loop: the next source's callbacks still go out."""

from __future__ import annotations

from dataclasses import replace

import aiohttp
import pytest
from aiohttp import web

from connectors.core.config import ConfigError
from connectors.core.enricher import Enricher
from connectors.webhook.app import RECEIVER, build_app
from connectors.webhook.config import load

from .test_callbacks import ALERT, TOKEN, WHSEC, Hook, job_state, serve


def source(name: str, hook_url: str) -> dict:
    return {"name": name, "format": "splunk", "auth": "bearer", "secret": TOKEN,
            "callback_url": hook_url + "/hook", "callback_secret": WHSEC, "allow_http": True,
            "allow_private": True, "retry_base": 0.05, "max_attempts": 2}  # fmt: skip


@pytest.mark.parametrize("url", ["https://example.com:99999/", "https://:443/x", "https://[::1/"])
def test_callback_urls_that_cannot_work_are_refused_at_start(url):
    src = {**source("a", "https://example.com"), "callback_url": url}
    with pytest.raises(ConfigError, match="callback_url"):
        load({"webhook": {"sources": [src]}})


async def test_one_broken_callback_does_not_stop_the_others(settings):
    hook = Hook(failures=0)
    hook_app = web.Application()
    hook_app.router.add_post("/hook", hook.handle)
    hook_runner, hook_url = await serve(hook_app)
    s = replace(settings, raw={"webhook": {"sources": [source("bad", hook_url),
                                                       source("good", hook_url)]}})  # fmt: skip
    enricher = Enricher(s, connector="webhook")
    app = build_app(s, enricher)
    bad_source = app[RECEIVER].cfg.sources["bad"]
    bad_source.callback_url, bad_source.allow_private = "https://example.com:99999/", False
    runner, url = await serve(app)
    try:
        jobs = {}
        async with aiohttp.ClientSession() as c:
            for name in ("bad", "good"):
                async with c.post(
                    f"{url}/v1/alerts/splunk?source={name}", json=ALERT,
                    headers={"Authorization": f"Bearer {TOKEN}"},
                ) as r:  # fmt: skip
                    assert r.status == 202
                    jobs[name] = (await r.json())["job"]
        bad = await job_state(url, jobs["bad"], "delivery", "dead")
        assert bad["delivery"] == "dead" and "Port" in bad["last_error"], bad
        good = await job_state(url, jobs["good"], "delivery", "delivered")
        assert good["delivery"] == "delivered" and len(hook.got) == 1
    finally:
        await runner.cleanup()
        await hook_runner.cleanup()
        await enricher.aclose()
        enricher.close()


async def test_a_flood_in_the_callback_answer_is_not_read(settings):
    """A callback target answering 2xx with an endless body: the delivery counts, the answer is
    not buffered (the target sees its connection dropped long before it finishes)."""
    sent = {"chunks": 0, "finished": False}

    async def flood(request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(status=200)
        await resp.prepare(request)
        try:
            for _ in range(256):  # 256 MiB if anyone read it all
                await resp.write(b"x" * (1 << 20))
                sent["chunks"] += 1
            sent["finished"] = True
        except (ConnectionError, RuntimeError):
            pass
        return resp

    hook_app = web.Application()
    hook_app.router.add_post("/hook", flood)
    hook_runner, hook_url = await serve(hook_app)
    s = replace(settings, raw={"webhook": {"sources": [source("s", hook_url)]}})
    enricher = Enricher(s, connector="webhook")
    runner, url = await serve(build_app(s, enricher))
    try:
        async with aiohttp.ClientSession() as c, c.post(
            f"{url}/v1/alerts/splunk", json=ALERT, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as r:  # fmt: skip
            jid = (await r.json())["job"]
        job = await job_state(url, jid, "delivery", "delivered")
        assert job["delivery"] == "delivered", job
        assert not sent["finished"] and sent["chunks"] < 64, sent
    finally:
        await runner.cleanup()
        await hook_runner.cleanup()
        await enricher.aclose()
        enricher.close()
