"""Alerts that once made the receiver fail: an Elastic-shaped answer for an alert whose own
`threat.enrichments` is not a list (a 500 before), and a job that hits a bug every time it runs
(retried forever before): it is marked failed after a few tries and the queue moves on."""

from __future__ import annotations

import asyncio
import json

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

    calls = []

    def buggy(fmt, doc, *args):  # stands in for a bug that only this alert triggers
        if doc.get("poison"):
            calls.append(1)
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
                async with s.get(url + job["status"], headers=BEARER) as r:  # the source may read
                    states[name] = await r.json()
            if states["poison"]["state"] == "failed" and states["fine"]["state"] == "done":
                break
            await asyncio.sleep(0.1)
    assert states["poison"]["state"] == "failed", states
    assert states["poison"]["result"] == {"error": "internal error"}
    assert states["fine"]["state"] == "done"
    # It fails alike on every try: tried once, and the job behind it was not held back.
    assert len(calls) == 1
    assert states["fine"]["updated"] - states["poison"]["updated"] < 0.9, states


async def _states(url, jobs, until):
    states = {}
    async with aiohttp.ClientSession() as s:
        for _ in range(150):
            for name, job in jobs.items():
                async with s.get(url + job["status"], headers=BEARER) as r:  # the source may read
                    states[name] = await r.json()
            if until(states):
                break
            await asyncio.sleep(0.1)
    return states


async def test_a_job_that_fails_for_a_while_is_retried_behind_the_queue(receiver, monkeypatch):
    from connectors.webhook import worker

    real = formats.indicators
    failures = []

    def flaky(fmt, doc, *args):  # a full disk or a locked database, once
        if doc.get("flaky") and not failures:
            failures.append(1)
            raise OSError(28, "No space left on device")
        return real(fmt, doc, *args)

    monkeypatch.setattr(formats, "indicators", flaky)
    monkeypatch.setattr(worker, "JOB_RETRY", 0.5)
    url, _ = await receiver()
    _, flaky_job = await post(url, "/v1/alerts/generic", {"flaky": 1, "ip": "1.2.3.4"}, BEARER)
    _, fine = await post(url, "/v1/alerts/generic", {"ip": "203.0.113.66"}, BEARER)
    states = await _states(
        url, {"flaky": flaky_job, "fine": fine},
        lambda st: all(j["state"] == "done" for j in st.values()),
    )  # fmt: skip
    assert states["flaky"]["state"] == states["fine"]["state"] == "done", states
    assert states["fine"]["updated"] < states["flaky"]["updated"]  # not blocked behind it


async def test_a_deep_job_stored_by_an_older_version_fails_at_once(receiver):
    """A body accepted before depth was checked after unflattening: failed with its reason on
    the first try, and the job after it is done."""
    from connectors.webhook.app import RECEIVER

    url, runner = await receiver()
    rec = runner.app[RECEIVER]
    body = json.dumps({".".join(["k"] * 5000): "8.8.8.8"}).encode()
    jid, _ = rec.outbox.accept("bearer", "generic", body, None)
    _, fine = await post(url, "/v1/alerts/generic", {"ip": "203.0.113.66"}, BEARER)
    rec.wake.set()
    poisoned = {"status": f"/v1/jobs/{jid}"}
    states = await _states(
        url, {"poison": poisoned, "fine": fine},
        lambda st: st["poison"]["state"] == "failed" and st["fine"]["state"] == "done",
    )  # fmt: skip
    assert states["poison"]["state"] == "failed", states
    assert "dotted parts" in states["poison"]["result"]["error"]
    assert states["fine"]["state"] == "done"
