"""The enrichment pipeline end to end against the emulator over real sockets."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import aiohttp
import pytest

from connectors.core import config
from connectors.core.enricher import Enricher
from connectors.core.gateway import CredentialsRejected
from connectors.core.verdict import Verdict
from connectors.emulator.app import EmulatorConfig
from connectors.emulator.server import running_emulator

EICAR = {
    "md5": "44d88612fea8a8f36de82e1278abb02f",
    "sha1": "3395856ce81f2b7382dee72602f798b642f14140",
    "sha256": "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f",
}


def make_settings(url, tmp_path, **quota):
    s = config.for_emulator(config.from_mapping({}, env={}), url, str(tmp_path))
    vt = replace(s.virustotal, retries=1, timeout=5)
    return replace(s, virustotal=vt, quota=replace(s.quota, **(quota or {"tier": "unlimited"})))


async def counters(url):
    async with aiohttp.ClientSession() as s, s.get(url + "/_emulator/counters") as r:
        return await r.json()


async def api_calls(url, endpoint="GET /api/v3/{collection}/{id}"):
    return (await counters(url))["by_endpoint"].get(endpoint, 0)


@pytest.fixture
async def emu():
    async with running_emulator() as running:
        yield running


@pytest.fixture
async def enricher(emu, tmp_path):
    e = Enricher(make_settings(emu.url, tmp_path), connector="test")
    yield e
    await e.aclose()
    e.close()


async def test_kinds_and_aliases(emu, enricher):
    out = await enricher.enrich(
        [EICAR["md5"], "example.com", "203.0.113.66", "hxxp://example[.]org/a", "2001:db8::1"]
    )
    verdicts = [r.verdict for r in out]
    assert verdicts[:4] == [
        Verdict.MALICIOUS,
        Verdict.HARMLESS,
        Verdict.MALICIOUS,
        Verdict.HARMLESS,
    ]
    assert out[4].verdict in (
        Verdict.NOT_FOUND,
        Verdict.HARMLESS,
        Verdict.UNDETECTED,
        Verdict.SUSPICIOUS,
        Verdict.MALICIOUS,
    )
    assert out[0].vt_id == EICAR["sha256"] and out[0].report.threat_label == "virus.eicar/test"
    assert out[0].link == f"https://www.virustotal.com/gui/file/{EICAR['sha256']}"
    assert out[3].kind == "url" and out[3].normalized == "http://example.org/a"
    calls = await api_calls(emu.url)
    # The sha1 and sha256 of the same file answer from the cache entry the md5 created.
    again = await enricher.enrich([EICAR["sha1"], EICAR["sha256"].upper()])
    assert all(r.cached and r.verdict == Verdict.MALICIOUS for r in again)
    assert await api_calls(emu.url) == calls


async def test_batch_dedupe_and_filters(emu, enricher):
    values = ["example.net"] * 50 + [
        "10.0.0.1",
        "printer.local",
        "x.corp",
        "",
        "\x00junk",
        "http://192.168.1.1/admin",
    ]
    out = await enricher.enrich(values)
    assert await api_calls(emu.url) == 1
    assert len(out) == len(values) and out[0] is out[49]
    skipped = out[50:]
    assert all(r.verdict == Verdict.SKIPPED and r.reason for r in skipped)
    assert "private" in skipped[0].reason and "internal" in skipped[2].reason


async def test_not_found_is_a_verdict_and_cached(emu, enricher):
    import hashlib

    hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(60)]
    out = await enricher.enrich(hashes)
    missing = [r for r in out if r.verdict == Verdict.NOT_FOUND]
    assert missing, "the emulator answers NotFoundError for a share of unknown hashes"
    assert all(r.score == 0 and r.report is None for r in missing)
    calls = await api_calls(emu.url)
    again = await enricher.enrich([r.value for r in missing])
    assert all(r.cached and r.verdict == Verdict.NOT_FOUND for r in again)
    assert await api_calls(emu.url) == calls


async def test_verdict_log_records_connector(enricher):
    await enricher.enrich([EICAR["md5"], "example.com"], connector="splunk")
    rows = enricher.cache.log_after(0)
    assert [(r.verdict, r.connector) for _, r in rows] == [
        ("malicious", "splunk"),
        ("harmless", "splunk"),
    ]
    malicious = enricher.cache.log_after(0, verdicts=["malicious"])
    assert [r.key for _, r in malicious] == [f"file:{EICAR['sha256']}"]


async def test_quota_budget_gives_quota_within_deadline(tmp_path):
    async with running_emulator(EmulatorConfig(default_tier="public")) as emu:
        e = Enricher(make_settings(emu.url, tmp_path, tier="public"), connector="test")
        values = [f"{i:032x}" for i in range(1, 11)]
        t0 = time.monotonic()
        out = await e.enrich(values, deadline=1.0)
        elapsed = time.monotonic() - t0
        await e.aclose()
        e.close()
        c = await counters(emu.url)
    assert sum(r.verdict == Verdict.QUOTA for r in out) == 6
    assert elapsed < 3.0
    assert c["by_status"].get("429", 0) == 0  # the governor kept us under the limit


async def test_429_backs_off_and_answers_quota(tmp_path):
    # The emulator enforces the public tier; we tell the governor nothing about it.
    async with running_emulator(EmulatorConfig(default_tier="public")) as emu:
        e = Enricher(make_settings(emu.url, tmp_path, tier="premium"), connector="test")
        out = await e.enrich([f"{i:032x}" for i in range(1, 9)], deadline=1.5)
        await e.aclose()
        status = e.governor.status()
        e.close()
        c = await counters(emu.url)
    assert sum(r.verdict == Verdict.QUOTA for r in out) >= 4
    assert not any(r.verdict == Verdict.ERROR for r in out)
    assert 1 <= c["by_status"].get("429", 0) <= 8  # no retry storm after the first 429s
    assert status["cooldown_until"] and status["per_minute"] < 1000


@pytest.mark.parametrize(
    "fault, code",
    [
        ({"error_rates": {"TransientError": 1.0}}, "TransientError"),
        ({"error_rates": {"ServerError": 1.0}}, "ServerError"),
        ({"malformed_rate": 1.0}, "BadAnswer"),
        ({"drop_rate": 1.0}, "ConnectionError"),
    ],
)
async def test_faults_cost_one_observable_each(tmp_path, fault, code):
    async with running_emulator(EmulatorConfig(faults=fault)) as emu:
        e = Enricher(make_settings(emu.url, tmp_path), connector="test")
        out = await e.enrich([EICAR["md5"], "10.1.1.1"])
        await e.aclose()
        e.close()
    assert out[0].verdict == Verdict.ERROR and out[0].error == code
    assert out[1].verdict == Verdict.SKIPPED


async def test_transient_error_is_retried(tmp_path):
    async with running_emulator(
        EmulatorConfig(faults={"error_rates": {"TransientError": 0.5}, "seed": 3})
    ) as emu:
        s = make_settings(emu.url, tmp_path)
        e = Enricher(replace(s, virustotal=replace(s.virustotal, retries=4)), connector="test")
        out = await e.enrich([f"{i:064x}" for i in range(1, 9)])
        await e.aclose()
        e.close()
        c = await counters(emu.url)
    assert c["by_status"].get("503", 0) >= 1
    assert sum(r.verdict == Verdict.ERROR for r in out) <= 1


async def test_timeout_and_deadline(tmp_path):
    async with running_emulator(EmulatorConfig(faults={"latency_ms": 3000})) as emu:
        e = Enricher(make_settings(emu.url, tmp_path), connector="test")
        t0 = time.monotonic()
        out = await e.enrich([EICAR["md5"], "example.com"], deadline=0.5)
        assert time.monotonic() - t0 < 2.0
        await e.aclose()
        e.close()
    assert all(r.verdict == Verdict.ERROR and r.error == "deadline" for r in out)


async def test_wrong_key_stops_with_clear_error(tmp_path):
    async with running_emulator(EmulatorConfig(accept_any_key=False)) as emu:
        e = Enricher(make_settings(emu.url, tmp_path), connector="test")
        with pytest.raises(CredentialsRejected) as exc:
            await e.enrich([EICAR["md5"], "example.com", "example.org"])
        assert exc.value.code == "WrongCredentialsError"
        await e.aclose()
        e.close()


async def test_rescan_after_days_marks_stale_and_requests_analysis(emu, tmp_path):
    e = Enricher(make_settings(emu.url, tmp_path), connector="test")
    import hashlib

    values = [hashlib.md5(str(i).encode()).hexdigest() for i in range(40)]
    first = await e.enrich(values)
    known = [r for r in first if r.report is not None]
    old = [r for r in known if r.report.age_days(time.time()) > 30]
    assert old, "the emulator dates a share of reports more than 30 days back"
    out = await e.enrich([r.value for r in known], rescan_after_days=30)
    stale = [r for r in out if r.stale]
    assert {r.value for r in stale} == {r.value for r in old}
    assert await api_calls(emu.url, "POST /api/v3/{collection}/{id}/analyse") == len(old)
    await e.aclose()
    e.close()


async def test_max_lookups_caps_api_calls(emu, enricher):
    out = await enricher.enrich([f"{i:040x}" for i in range(1, 6)], max_lookups=2)
    assert sum(r.verdict == Verdict.QUOTA for r in out) == 3
    assert await api_calls(emu.url) == 2
    out = await enricher.enrich([f"{i:040x}" for i in range(10, 12)], max_lookups=0)
    assert [r.verdict for r in out] == [Verdict.QUOTA, Verdict.QUOTA]


def test_sync_wrapper(emulator_url, tmp_path):
    e = Enricher(make_settings(emulator_url, tmp_path), connector="test")
    out = e.enrich_sync([EICAR["md5"]])
    assert out[0].verdict == Verdict.MALICIOUS
    out = e.enrich_sync([EICAR["md5"], "example.com"])  # a second loop, a new client
    assert out[0].cached and out[1].verdict == Verdict.HARMLESS

    async def inside_a_loop():
        with pytest.raises(RuntimeError):
            e.enrich_sync(["example.com"])

    asyncio.run(inside_a_loop())
    e.close()


async def test_relationships_in_the_same_get(emu, tmp_path):
    s = make_settings(emu.url, tmp_path)
    s = replace(s, virustotal=replace(s.virustotal, relationships=("contacted_domains",)))
    e = Enricher(s, connector="test")
    out = await e.enrich([EICAR["md5"]])
    assert "contacted_domains" in out[0].report.relationships
    assert await api_calls(emu.url) == 1
    await e.aclose()
    e.close()


async def test_example_relationships_go_only_to_the_kinds_that_have_them(emu, tmp_path):
    # The example config's list: files and URLs have both, domains and IPs neither. Sent to a
    # domain or an IP it is a 400 (an error, not cached, asked again on every lookup).
    s = make_settings(emu.url, tmp_path)
    doc = {"virustotal": {"relationships": ["contacted_domains", "contacted_ips"]}}
    rels = config.from_mapping(doc, env={}).virustotal.relationships
    e = Enricher(replace(s, virustotal=replace(s.virustotal, relationships=rels)), connector="test")
    values = [EICAR["md5"], "http://example.org/a", "example.com", "203.0.113.66"]
    for _ in range(2):
        out = await e.enrich(values)
        assert not any(r.verdict == Verdict.ERROR for r in out), [r.reason for r in out]
    assert set(out[0].report.relationships) == {"contacted_domains", "contacted_ips"}
    assert set(out[1].report.relationships) == {"contacted_domains", "contacted_ips"}
    assert out[2].report.relationships == {} and out[3].report.relationships == {}
    c = await counters(emu.url)
    assert c["by_status"].get("400", 0) == 0
    assert await api_calls(emu.url) == 4  # once each; the second round came from the cache
    await e.aclose()
    e.close()


async def test_relationships_per_kind_table(emu, tmp_path):
    s = make_settings(emu.url, tmp_path)
    doc = {"virustotal": {"relationships": {"domain": ["resolutions"], "ip": ["resolutions"]}}}
    rels = config.from_mapping(doc, env={}).virustotal.relationships
    e = Enricher(replace(s, virustotal=replace(s.virustotal, relationships=rels)), connector="test")
    out = await e.enrich([EICAR["md5"], "example.net", "203.0.113.66"])
    assert [set(r.report.relationships) for r in out] == [set(), {"resolutions"}, {"resolutions"}]
    assert (await counters(emu.url))["by_status"].get("400", 0) == 0
    await e.aclose()
    e.close()


ANALYSE = "POST /api/v3/{collection}/{id}/analyse"


async def test_a_fresh_report_already_old_is_stale_and_rescanned_at_once(emu, tmp_path):
    import hashlib

    e = Enricher(make_settings(emu.url, tmp_path), connector="test")
    values = [hashlib.md5(f"fresh{i}".encode()).hexdigest() for i in range(40)]
    out = await e.enrich(values, rescan_after_days=30)
    old = [r for r in out if r.report is not None and r.report.age_days(time.time()) > 30]
    assert old, "the emulator dates a share of reports more than 30 days back"
    assert {r.value for r in out if r.stale} == {r.value for r in old}
    assert await api_calls(emu.url, ANALYSE) == len(old)
    # Asked again (memo, cache): marked stale still, never a second reanalysis.
    again = await e.enrich(values, rescan_after_days=30)
    assert {r.value for r in again if r.stale} == {r.value for r in old}
    assert await api_calls(emu.url, ANALYSE) == len(old)
    await e.aclose()
    e.close()


async def test_a_report_without_analysis_date_is_not_rescanned(emu, tmp_path):
    from connectors.core.store import CacheEntry

    e = Enricher(make_settings(emu.url, tmp_path), connector="test")
    # As many real domain objects are: no last_analysis_date at all.
    report = {"kind": "domain", "id": "example.com", "stats": {"harmless": 60}}
    e.cache.put(CacheEntry("domain:example.com", "harmless", report, time.time()))
    out = await e.enrich(["example.com"], rescan_after_days=1)
    assert out[0].cached and not out[0].stale
    assert await api_calls(emu.url, ANALYSE) == 0
    await e.aclose()
    e.close()


def test_rescans_are_asked_once_across_processes(emulator_url, tmp_path):
    """Two real CLI processes, one after the other, on the same host state: the second finds
    the first one's reanalysis recorded and asks none."""
    import hashlib
    import json
    import os
    import subprocess
    import sys
    import urllib.request

    cfg = tmp_path / "vtconnect.toml"
    cfg.write_text(
        f'[core]\nstate_dir = "{tmp_path / "state"}"\n'
        "[privacy]\nallow_documentation_ranges = true\n[quota]\ntier = 'unlimited'\n"
    )
    env = dict(os.environ, VT_API_URL=emulator_url, VT_API_KEY="k", VTCONNECT_CONFIG=str(cfg))
    exe = os.path.join(os.path.dirname(sys.executable), "vtconnect")
    values = [hashlib.md5(f"procs{i}".encode()).hexdigest() for i in range(30)]

    def analyses() -> int:
        with urllib.request.urlopen(emulator_url + "/_emulator/counters", timeout=5) as r:
            c = json.loads(r.read())
        return c["by_endpoint"].get(ANALYSE, 0)

    before = analyses()
    runs = []
    for _ in range(2):
        r = subprocess.run(
            [exe, "lookup", "--format", "json", "--rescan-after-days", "30", *values],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr
        runs.append(json.loads(r.stdout))
    stale = [{row["value"] for row in rows if row["stale"]} for rows in runs]
    assert stale[0] and stale[0] == stale[1]
    assert analyses() - before == len(stale[0])
