"""Alerts that once made the receiver fail: an Elastic-shaped answer for an alert whose own
`threat.enrichments` is not a list (a 500 before), and a job that hits a bug every time it runs
(retried forever before): it is marked failed after a few tries and the queue moves on."""

from __future__ import annotations

import asyncio

import aiohttp

from connectors.webhook import formats

from .test_receiver import BEARER, post


async def test_odd_threat_enrichments_keep_the_senders_value(receiver):
    url, _ = await receiver()
    for odd, kept in ((5, [5]), (None, []), ({"a": 1}, [{"a": 1}]), ("xy", ["xy"])):
        alert = {"threat": {"enrichments": odd}, "ip": "203.0.113.66"}
        status, answer = await post(url, "/v1/alerts/generic?wait=5&shape=elastic", alert, BEARER)
        assert status == 200, answer
        got = answer["threat"]["enrichments"]
        assert got[: len(kept)] == kept and got[-1]["indicator"]["ip"] == "203.0.113.66", got


async def test_a_job_that_always_fails_is_marked_failed(receiver, monkeypatch):
    real = formats.indicators

    def buggy(fmt, doc, *args):  # stands in for a bug that only this alert triggers
        if doc.get("poison"):
            raise RuntimeError("a bug")
        return real(fmt, doc, *args)

    monkeypatch.setattr(formats, "indicators", buggy)
    url, _ = await receiver()
    status, poison = await post(url, "/v1/alerts/generic", {"poison": 1, "ip": "1.2.3.4"}, BEARER)
    assert status == 202
    status, fine = await post(url, "/v1/alerts/generic", {"ip": "203.0.113.66"}, BEARER)
    assert status == 202
    states = {}
    async with aiohttp.ClientSession() as s:
        for _ in range(100):
            for name, job in (("poison", poison), ("fine", fine)):
                async with s.get(url + job["status"]) as r:
                    states[name] = await r.json()
            if states["poison"]["state"] == "failed" and states["fine"]["state"] == "done":
                break
            await asyncio.sleep(0.1)
    assert states["poison"]["state"] == "failed", states
    assert states["poison"]["result"] == {"error": "internal error"}
    assert states["fine"]["state"] == "done"
