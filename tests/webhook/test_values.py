"""Values in alerts: the domains of e-mail addresses are not looked up unless
privacy.extract_email_domains asks for it, and the [lists] section decides before any call."""

from __future__ import annotations

import contextlib
from dataclasses import replace

import pytest
from aiohttp import web

from connectors.core import config
from connectors.core.enricher import Enricher
from connectors.webhook.app import build_app

from .test_privacy import emulator_calls
from .test_receiver import BEARER, SECRET, doc_with_sources, post

PHISH = {
    "message": "Phish from alice@corp.example.com to bob@mail.example.net, link evil.example.com/x"
}


@contextlib.asynccontextmanager
async def receiver_with(settings):  # type: ignore[no-untyped-def]
    raw = doc_with_sources({"name": "bearer", "format": "auto", "auth": "bearer", "secret": SECRET})
    s = replace(settings, raw=raw)
    enricher = Enricher(s, connector="webhook")
    runner = web.AppRunner(build_app(s, enricher), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    finally:
        await runner.cleanup()
        await enricher.aclose()
        enricher.close()


async def observed(url: str, alert: dict) -> dict:
    status, answer = await post(url, "/v1/alerts/generic?source=bearer&wait=5", alert, BEARER)
    assert status == 200, answer
    return {o["value"]: o for o in answer["enrichment"]["observables"]}


@pytest.mark.parametrize("extract_email_domains", [False, True])
async def test_email_domains_only_when_asked(settings, extract_email_domains):
    privacy = replace(settings.privacy, extract_email_domains=extract_email_domains)
    async with receiver_with(replace(settings, privacy=privacy)) as url:
        got = await observed(url, PHISH)
    assert "http://evil.example.com/x" in got
    if extract_email_domains:
        assert {"corp.example.com", "mail.example.net"} <= set(got)
    else:
        assert not {"corp.example.com", "mail.example.net"} & set(got), got


async def test_lists_decide_before_any_call(settings, emulator_url):
    lists = config.ListsSettings(ignore=(".example.org",), force_harmless=("203.0.113.66",))
    alert = {"ip": "203.0.113.66", "domain": "www.example.org", "url": "https://example.org/a"}
    before = await emulator_calls(emulator_url)
    async with receiver_with(replace(settings, lists=lists)) as url:
        got = await observed(url, alert)
    assert await emulator_calls(emulator_url) == before
    assert got["203.0.113.66"]["verdict"] == "harmless"
    assert "[lists] force_harmless" in got["203.0.113.66"]["reason"]
    for value in ("www.example.org", "https://example.org/a"):
        assert got[value]["verdict"] == "skipped" and "[lists] ignore" in got[value]["reason"]
