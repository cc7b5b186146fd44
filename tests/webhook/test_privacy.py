"""Indicators that must not leave the network never reach VirusTotal (the emulator counts every
call it gets), whatever field or format of the alert they come in; they are reported as skipped."""

from __future__ import annotations

import aiohttp

from .test_receiver import BEARER, post

PRIVATE = ["10.0.0.5", "192.168.1.20", "172.16.4.4", "127.0.0.1", "fe80::1", "fd00::7",
           "db01.corp", "files.internal", "nas.local", "http://intranet.corp/login",
           "http://10.1.2.3/payload.exe"]  # fmt: skip


async def emulator_calls(emulator_url: str) -> int:
    async with aiohttp.ClientSession() as s, s.get(emulator_url + "/_emulator/counters") as r:
        return (await r.json())["requests"]


async def test_internal_indicators_never_reach_virustotal(receiver, emulator_url):
    url, _ = await receiver()
    alerts = [
        {"src_ip": ",".join(PRIVATE[:3]), "dst_ip": PRIVATE[3], "ip": PRIVATE[4:6],
         "domain": PRIVATE[6], "hostname": PRIVATE[7], "fqdn": PRIVATE[8], "url": PRIVATE[9]},
        {"message": "beacon from " + " and ".join(PRIVATE) + " to hxxp://10[.]9[.]9[.]9/x"},
        {"sid": "s1", "search_name": "x", "result": {"src": "10.0.0.9", "dest": "pc.lan"}},
    ]  # fmt: skip
    before = await emulator_calls(emulator_url)
    for alert in alerts:
        status, answer = await post(url, "/v1/alerts/auto?source=bearer&wait=5", alert, BEARER)
        assert status == 200, answer
        observables = answer["enrichment"]["observables"]
        assert observables, alert  # they were found...
        for o in observables:  # ...and kept home
            assert o["verdict"] == "skipped", o
        assert answer["enrichment"]["is_risky"] is False
    assert await emulator_calls(emulator_url) == before
    # the same receiver does call VirusTotal for a public indicator (the check above can fail)
    await post(url, "/v1/alerts/generic?source=bearer&wait=5", {"ip": "203.0.113.66"}, BEARER)
    assert await emulator_calls(emulator_url) > before
