"""One value, one call: concurrent askers in one process share one in-flight answer, askers in
other processes (real ones) wait on a lease in the shared cache database for its entry."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import replace

import aiohttp
import pytest

from connectors.core import config
from connectors.core.clock import FakeClock
from connectors.core.enricher import Enricher
from connectors.core.store import CacheEntry
from connectors.core.verdict import Verdict
from connectors.emulator.app import EmulatorConfig
from connectors.emulator.server import running_emulator

EICAR = {
    "md5": "44d88612fea8a8f36de82e1278abb02f",
    "sha1": "3395856ce81f2b7382dee72602f798b642f14140",
    "sha256": "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f",
}
GET = "GET /api/v3/{collection}/{id}"
VTCONNECT = os.path.join(os.path.dirname(sys.executable), "vtconnect")


def make_settings(url, tmp_path):
    s = config.for_emulator(config.from_mapping({}, env={}), url, str(tmp_path / "state"))
    return replace(
        s,
        virustotal=replace(s.virustotal, retries=0, timeout=10),
        quota=replace(s.quota, tier="unlimited"),
    )


async def calls(url, endpoint=GET):
    async with aiohttp.ClientSession() as s, s.get(url + "/_emulator/counters") as r:
        return (await r.json())["by_endpoint"].get(endpoint, 0)


@pytest.fixture
async def slow_emu():
    # Slow answers, so that every asker is asking while the first call is still out.
    async with running_emulator(EmulatorConfig(faults={"latency_ms": 400})) as running:
        yield running


async def test_concurrent_enrich_calls_share_one_call(slow_emu, tmp_path):
    e = Enricher(make_settings(slow_emu.url, tmp_path), connector="webhook")
    value = "a" * 64
    out = await asyncio.gather(*(e.enrich([value]) for _ in range(3)))
    assert await calls(slow_emu.url) == 1
    assert len({r[0].verdict for r in out}) == 1 and out[0][0].verdict != Verdict.ERROR
    assert sum(not r[0].cached for r in out) == 1  # the other two cost no call
    # The waiters' answers are complete Enrichments of their own value.
    assert all(r[0].value == value and r[0].kind == "sha256" for r in out)
    await e.aclose()
    e.close()


async def test_md5_and_sha256_asked_at_once_share_when_the_alias_is_known(slow_emu, tmp_path):
    clock = FakeClock(time.time())
    s = make_settings(slow_emu.url, tmp_path)
    first = Enricher(s, connector="test", clock=clock)
    assert (await first.enrich([EICAR["md5"]]))[0].verdict == Verdict.MALICIOUS
    await first.aclose()
    first.close()
    clock.advance(s.cache.ttl_malicious + 1)  # the entry expired; its aliases still name it
    e = Enricher(s, connector="test", clock=clock)
    before = await calls(slow_emu.url)
    out = await asyncio.gather(
        e.enrich([EICAR["md5"]]), e.enrich([EICAR["sha256"]]), e.enrich([EICAR["sha1"]])
    )
    assert await calls(slow_emu.url) - before == 1
    assert [r[0].verdict for r in out] == [Verdict.MALICIOUS] * 3
    assert [r[0].kind for r in out] == ["md5", "sha256", "sha1"]
    assert all(r[0].vt_id == EICAR["sha256"] for r in out)
    await e.aclose()
    e.close()


async def test_a_waiter_asks_itself_when_the_first_asker_gives_up(slow_emu, tmp_path):
    e = Enricher(make_settings(slow_emu.url, tmp_path), connector="test")
    value = "b" * 64
    hasty, patient = await asyncio.gather(
        e.enrich([value], deadline=0.1), e.enrich([value], deadline=5)
    )
    assert hasty[0].error == "deadline"
    assert patient[0].verdict != Verdict.ERROR and not patient[0].cached
    await e.aclose()
    e.close()


def cli_env(url, tmp_path):
    cfg = tmp_path / "vtconnect.toml"
    cfg.write_text(
        f'[core]\nstate_dir = "{tmp_path / "state"}"\n'
        "[privacy]\nallow_documentation_ranges = true\n"
        "[quota]\ntier = 'unlimited'\n"
    )
    return dict(os.environ, VT_API_URL=url, VT_API_KEY="k", VTCONNECT_CONFIG=str(cfg))


async def test_five_processes_and_this_one_ask_one_cold_value_once(tmp_path):
    # Answers take 1.5 s, longer than the processes take to start, so all six ask at once.
    async with running_emulator(EmulatorConfig(faults={"latency_ms": 1500})) as emu:
        value = "c" * 64
        env = cli_env(emu.url, tmp_path)
        procs = [
            await asyncio.create_subprocess_exec(
                VTCONNECT,
                "lookup",
                "--format",
                "json",
                value,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(5)
        ]
        e = Enricher(make_settings(emu.url, tmp_path), connector="webhook")
        mine = await e.enrich([value])
        outs = [await p.communicate() for p in procs]
        await e.aclose()
        e.close()
        assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
        verdicts = {json.loads(out)[0]["verdict"] for out, _ in outs} | {mine[0].verdict.value}
        assert len(verdicts) == 1 and verdicts != {"error"}
        assert await calls(emu.url) == 1


def take_lease_as(e, key, pid, until):
    e.cache.db.execute(
        "INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?)", (key, "other", pid, until)
    )


async def test_a_dead_holder_never_blocks(slow_emu, tmp_path):
    e = Enricher(make_settings(slow_emu.url, tmp_path), connector="test")
    holder = subprocess.Popen([sys.executable, "-c", "pass"])
    holder.wait()  # a process that took the lease and died with it
    take_lease_as(e, "file:" + "d" * 64, holder.pid, time.time() + 3600)
    t0 = time.monotonic()
    out = await e.enrich(["d" * 64], deadline=5)
    assert time.monotonic() - t0 < 2.0
    assert out[0].verdict != Verdict.ERROR and await calls(slow_emu.url) == 1
    # A live holder whose lease time is up is taken over too.
    take_lease_as(e, "file:" + "e" * 64, os.getpid(), time.time() - 1)
    assert (await e.enrich(["e" * 64], deadline=5))[0].verdict != Verdict.ERROR
    await e.aclose()
    e.close()


async def test_a_live_holder_is_waited_for_up_to_the_deadline(slow_emu, tmp_path):
    e = Enricher(make_settings(slow_emu.url, tmp_path), connector="test")
    key = "file:" + "f" * 64
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        take_lease_as(e, key, holder.pid, time.time() + 30)
        out = await e.enrich(["f" * 64], deadline=0.5)
        assert out[0].error == "deadline" and await calls(slow_emu.url) == 0
        # The holder's answer arrives while we wait: we take it from the cache, no call.
        waiting = asyncio.ensure_future(e.enrich(["f" * 64], deadline=5))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        e.cache.put(CacheEntry(key, "harmless", {"kind": "file", "id": "f" * 64}, time.time()))
        out = await asyncio.wait_for(waiting, 1.0)
        assert out[0].cached and out[0].vt_id == "f" * 64 and out[0].error == ""
        assert await calls(slow_emu.url) == 0
    finally:
        holder.kill()
        holder.wait()
    await e.aclose()
    e.close()
