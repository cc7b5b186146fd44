"""Indicator extraction is CPU work (a 57 KB alert took ~420 ms on its first call, ~60 ms after):
it runs off the event loop, so one big alert does not stall /healthz, the other alerts or the
TAXII part served by the same loop (found by the fuzz suite's liveness check)."""

from __future__ import annotations

import threading

from connectors.webhook import formats

from .test_receiver import BEARER, post


async def test_extraction_runs_off_the_event_loop(receiver, monkeypatch):
    real, seen = formats.indicators, []

    def spy(*args):
        seen.append(threading.get_ident())
        return real(*args)

    monkeypatch.setattr(formats, "indicators", spy)
    url, _ = await receiver()
    status, body = await post(url, "/v1/alerts/generic?wait=5", {"ip": "203.0.113.5"}, BEARER)
    assert status == 200, body
    assert seen and threading.get_ident() not in seen
