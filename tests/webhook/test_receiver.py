"""The alert receiver over real HTTP, with the emulator behind the core."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from dataclasses import replace

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from connectors.core.enricher import Enricher
from connectors.webhook import auth, formats, payload
from connectors.webhook.app import build_app

SECRET = "s3cret-token-0123456789"
WHSEC = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
EICAR = "44d88612fea8a8f36de82e1278abb02f"

ELASTIC = {"context": {"alerts": [{"kibana.alert.uuid": "a1b2c3", "kibana.alert.rule.name": "C2",
                                   "source": {"ip": "10.0.0.5"},
                                   "destination": {"ip": "203.0.113.66"},
                                   "file": {"hash": {"md5": EICAR}},
                                   "message": "beacon to hxxp://malware.wicar[.]org/data/eicar.com"}]},
           "rule": {"name": "C2 beacon"}}  # fmt: skip
SENTINEL = {"object": {"name": "inc-42", "properties": {
    "title": "Suspicious download", "incidentNumber": 42,
    "lastModifiedTimeUtc": "2026-11-22T10:00:00Z",
    "relatedEntities": [{"kind": "Ip", "properties": {"address": "203.0.113.66"}},
                        {"kind": "Url", "properties": {"url": "http://example.com/x"}},
                        {"kind": "FileHash", "properties": {"algorithm": "MD5",
                                                            "hashValue": EICAR}}]}}}  # fmt: skip
SPLUNK = {
    "sid": "scheduler__admin__search__RMD5_at_1700000000_1",
    "search_name": "Proxy IOC",
    "result": {"dest": "malware.wicar.org", "src_ip": "10.1.1.1", "count": "3"},
}
WAZUH_SHA256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
WAZUH = {"all_fields": {"id": "1700000000.12345",
                        "rule": {"level": 12, "description": "File added: eicar"},
                        "agent": {"name": "web01"},
                        "syscheck": {"sha256_after": WAZUH_SHA256}}}  # fmt: skip


def doc_with_sources(*sources):
    return {"quota": {"tier": "unlimited"}, "webhook": {"sources": list(sources)}}


@pytest.fixture
async def receiver(settings, tmp_path):
    raw = doc_with_sources(
        {"name": "bearer", "format": "auto", "auth": "bearer", "secret": SECRET},
        {"name": "hub", "format": "generic", "auth": "github", "secret": SECRET},
        {"name": "std", "format": "generic", "auth": "standard", "secret": WHSEC},
        {
            "name": "basic",
            "format": "generic",
            "auth": "basic",
            "secret": SECRET,
            "username": "siem",
        },
        {"name": "splunkurl", "format": "splunk", "auth": "url", "secret": SECRET},
        {
            "name": "small",
            "format": "generic",
            "auth": "header",
            "secret": SECRET,
            "max_body_bytes": 2000,
            "rate_per_minute": 3,
        },
    )
    s = replace(settings, raw=raw)
    enricher = Enricher(s, connector="webhook")
    runners = []

    async def start():
        app = build_app(s, enricher)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}", runner

    yield start
    for r in runners:
        await r.cleanup()
    await enricher.aclose()
    enricher.close()


async def post(url, path, body, headers=None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    h = {"Content-Type": "application/json", **(headers or {})}
    async with aiohttp.ClientSession() as s, s.post(url + path, data=data, headers=h) as r:
        return r.status, await r.json(content_type=None)


BEARER = {"Authorization": f"Bearer {SECRET}"}


@pytest.mark.parametrize("fmt, alert, expected", [
    ("elastic", ELASTIC, {EICAR: "malicious", "203.0.113.66": "malicious",
                          "http://malware.wicar.org/data/eicar.com": "malicious"}),
    ("sentinel", SENTINEL, {EICAR: "malicious", "203.0.113.66": "malicious",
                            "http://example.com/x": "harmless"}),
    ("splunk", SPLUNK, {"malware.wicar.org": "malicious"}),
    ("wazuh", WAZUH, {"275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f":
                      "malicious"}),
])  # fmt: skip
async def test_sync_enrichment_per_format(receiver, fmt, alert, expected):
    url, _ = await receiver()
    for path in (f"/v1/alerts/{fmt}?source=bearer&wait=10", "/v1/alerts/auto?wait=10"):
        status, body = await post(url, path, alert, BEARER)
        assert status == 200, body
        e = body["enrichment"]
        got = {o["value"]: o["verdict"] for o in e["observables"]}
        assert {k: got.get(k) for k in expected} == expected
        assert e["is_risky"] is True and e["verdict"] == "malicious"
        assert e["format"] == fmt
        assert "10.0.0.5" not in got or got["10.0.0.5"] == "skipped"


async def test_async_job_idempotent_and_durable(receiver):
    url, runner = await receiver()
    status, first = await post(url, "/v1/alerts/splunk?source=bearer", SPLUNK, BEARER)
    assert status == 202
    status, again = await post(url, "/v1/alerts/splunk?source=bearer", SPLUNK, BEARER)
    assert status == 200 and again["job"] == first["job"] and again["duplicate"] is True
    for _ in range(100):
        async with aiohttp.ClientSession() as s, s.get(url + first["status"]) as r:
            job = await r.json()
        if job["state"] == "done":
            break
        await asyncio.sleep(0.05)
    assert job["state"] == "done"
    assert job["result"]["alerts"][0]["enrichment"]["is_risky"] is True


async def test_queued_job_survives_a_restart(receiver, settings):
    url, runner = await receiver()
    app = runner.app
    from connectors.webhook.app import RECEIVER

    rec = app[RECEIVER]
    # Accepted but not yet worked on, as if the process died right after answering 202.
    jid, _ = rec.outbox.accept("bearer", "splunk", json.dumps(SPLUNK).encode(), "bearer/x1")
    rec.outbox.claim()  # now "running", and the process "dies"
    await runner.cleanup()
    url2, _ = await receiver()  # a new process on the same outbox
    for _ in range(100):
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"{url2}/v1/jobs/{jid}", headers=BEARER) as r,
        ):
            job = await r.json()
        if job["state"] == "done":
            break
        await asyncio.sleep(0.05)
    assert job["state"] == "done"


def github_sig(body):
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


async def test_auth_schemes(receiver):
    url, _ = await receiver()
    body = json.dumps({"message": "seen example.org"}).encode()
    ok = [
        ("/v1/alerts/generic?source=hub&wait=5", {"X-Hub-Signature-256": github_sig(body)}),
        (
            "/v1/alerts/generic?source=basic&wait=5",
            {"Authorization": "Basic " + base64.b64encode(f"siem:{SECRET}".encode()).decode()},
        ),
        (f"/v1/alerts/splunk/{SECRET}?wait=5", {}),
        ("/v1/alerts/generic?source=small&wait=5", {"X-Webhook-Token": SECRET}),
    ]
    for path, headers in ok:
        status, resp = await post(url, path, body, headers)
        assert status == 200, (path, resp)
    stamp = str(int(time.time()))
    std = {
        "webhook-id": "msg_1",
        "webhook-timestamp": stamp,
        "webhook-signature": auth.sign_standard(WHSEC, "msg_1", int(stamp), body),
    }
    assert (await post(url, "/v1/alerts/generic?source=std&wait=5", body, std))[0] == 200
    status, resp = await post(url, "/v1/alerts/generic?source=std&wait=5", body, std)
    assert status == 401 and "replayed" in resp["message"]
    bad = [
        ("/v1/alerts/generic?source=hub", {"X-Hub-Signature-256": github_sig(body + b" ")}),
        ("/v1/alerts/generic?source=basic", {"Authorization": "Basic Zm9vOmJhcg=="}),
        ("/v1/alerts/splunk/wrong-token", {}),
        ("/v1/alerts/generic?source=bearer", {"Authorization": "Bearer nope"}),
        ("/v1/alerts/generic?source=std", dict(std, **{"webhook-id": "msg_2"})),
        ("/v1/alerts/generic?source=std", dict(std, **{"webhook-timestamp": "1000"})),
    ]
    for path, headers in bad:
        status, resp = await post(url, path, body, headers)
        assert status == 401, (path, resp)


async def test_bad_input_is_a_clear_4xx(receiver):
    url, _ = await receiver()
    h = dict(BEARER)
    small = {"X-Webhook-Token": SECRET}
    cases = [
        ("/v1/alerts/generic?source=bearer", b"{not json", h, 400),
        ("/v1/alerts/generic?source=bearer", b"", h, 400),
        ("/v1/alerts/generic?source=bearer", b"\xff\xfe{}", h, 400),
        ("/v1/alerts/generic?source=bearer", b"[" * 5000 + b"]" * 5000, h, 400),
        ("/v1/alerts/generic?source=bearer", b"42", h, 400),
        ("/v1/alerts/nosuchformat", b"{}", h, 404),
        ("/v1/alerts/generic?source=ghost", b"{}", h, 404),
        ("/v1/alerts/generic?source=bearer&wait=abc", b"{}", h, 400),
        ("/v1/alerts/generic?source=small", b"{" + b" " * 3000 + b"}", small, 413),
    ]
    for path, body, headers, code in cases:
        status, resp = await post(url, path, body, headers)
        assert status == code, (path, resp)
        assert resp["error"] and resp["message"]
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            url + "/v1/alerts/generic?source=bearer",
            data=b"<xml/>",
            headers={**h, "Content-Type": "application/xml"},
        ) as r,
    ):
        assert r.status == 415
    codes = [
        (await post(url, "/v1/alerts/generic?source=small", b"{}", small))[0] for _ in range(4)
    ]
    assert codes[-1] == 429


async def test_health_and_metrics(receiver):
    url, _ = await receiver()
    await post(url, "/v1/alerts/generic?source=bearer&wait=5", {"ip": "203.0.113.66"}, BEARER)
    async with aiohttp.ClientSession() as s:
        async with s.get(url + "/healthz") as r:
            assert (await r.json())["ok"] is True
        async with s.get(url + "/metrics") as r:
            text = await r.text()
    assert 'vtconnect_webhook_requests_total{source="bearer",status="200"} 1.0' in text
    assert "vtconnect_webhook_enrichment_seconds_count 1.0" in text
    assert "vtconnect_quota_left_today -1.0" in text  # the test settings have no local limit
    assert "vtconnect_cache_misses_today 1.0" in text


def test_payload_shapes():
    assert payload.decode(b'{"a": 1}\n{"b": 2}\n') == [{"a": 1}, {"b": 2}]
    assert payload.decode(b'{"a": 1}{"b": 2}') == [{"a": 1}, {"b": 2}]
    assert payload.decode(b'"{\\"a\\": 1}"') == [{"a": 1}]
    assert payload.decode(b'[{"source.ip": "1.2.3.4", "source": {"port": 80}}]') == [
        {"source": {"ip": "1.2.3.4", "port": 80}}
    ]
    fmt, values = formats.indicators(
        "generic", {"ips": {"ip": "203.0.113.1,203.0.113.2"}, "count": 5}
    )
    assert values == ["203.0.113.1", "203.0.113.2"]


@hsettings(max_examples=200, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_parsers_never_raise_anything_else(raw):
    try:
        docs = payload.decode(raw)
    except payload.PayloadError:
        return
    for d in docs:
        formats.indicators("auto", d)
        formats.idempotency_key("auto", d)


async def test_output_shapes(receiver):
    from stix2validator import ValidationOptions, validate_instance

    url, _ = await receiver()
    base = "/v1/alerts/elastic?source=bearer&wait=10&shape="
    status, body = await post(url, base + "elastic", ELASTIC, BEARER)
    assert status == 200
    enrich = body["threat"]["enrichments"]
    assert {e["indicator"]["type"] for e in enrich} == {"ipv4-addr", "file", "url"}
    assert all(e["indicator"]["provider"] == "VirusTotal" for e in enrich)
    status, body = await post(url, base + "sentinel", SENTINEL, BEARER)
    assert "VirusTotal" in body["comment"]["properties"]["message"]
    status, body = await post(url, base + "stix", ELASTIC, BEARER)
    assert body["type"] == "bundle"
    assert validate_instance(body, ValidationOptions(version="2.1")).is_valid
    status, body = await post(url, base + "pdf", ELASTIC, BEARER)
    assert status == 400 and body["error"] == "bad_shape"
