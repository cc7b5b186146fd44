"""The API budget over real sockets: 429s are honoured host-wide and never hammered, every request
that leaves takes a slot (the ledger agrees with what the emulator counted), and slots are
budgeted by when requests really reach the server."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import subprocess
import sys
import time
from dataclasses import replace

import aiohttp
import pytest

from connectors.core import config
from connectors.core.clock import Clock
from connectors.core.enricher import Enricher
from connectors.core.observable import parse
from connectors.core.verdict import Verdict
from connectors.emulator.app import EmulatorConfig
from connectors.emulator.quota import TierQuota
from connectors.emulator.server import running_emulator

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def hashes(n, salt="v"):
    return [hashlib.sha256(f"{salt}{i}".encode()).hexdigest() for i in range(n)]


def make_settings(url, tmp_path, tier="unlimited", **vt):
    doc = {"quota": {"tier": tier}}
    s = config.for_emulator(config.from_mapping(doc, env={}), url, str(tmp_path))
    return replace(s, virustotal=replace(s.virustotal, **vt))


async def counters(url):
    async with aiohttp.ClientSession() as s, s.get(url + "/_emulator/counters") as r:
        return await r.json()


# -- 429: wait, host-wide, bounded -----------------------------------------------------------
@pytest.mark.parametrize("deadline, most", [(1.5, 2), (None, 3)])
async def test_429_storm_is_bounded_on_the_unlimited_tier(tmp_path, deadline, most):
    # Every answer a 429 with Retry-After: 1. The governor grants at once ("unlimited"), so
    # only honouring Retry-After and a bound on 429s per call stop a hammering loop.
    faults = {"error_rates": {"QuotaExceededError": 1.0}}
    async with running_emulator(EmulatorConfig(faults=faults)) as emu:
        e = Enricher(make_settings(emu.url, tmp_path), connector="cli")
        t0 = time.monotonic()
        try:
            [r] = await asyncio.wait_for(e.enrich(hashes(1), deadline=deadline), 10)
        finally:
            await e.aclose()
            e.close()
        elapsed = time.monotonic() - t0
        c = await counters(emu.url)
    assert r.verdict == Verdict.QUOTA, r.reason
    assert c["requests"] == most  # one per Retry-After second, at most 3 for one call
    assert elapsed < (deadline or 3) + 0.5


async def test_retry_after_holds_every_process_using_the_state_dir(tmp_path):
    # The emulator enforces the public tier; we configured "unlimited" (a wrong guess).
    async with running_emulator(EmulatorConfig(default_tier="public")) as emu:
        e = Enricher(make_settings(emu.url, tmp_path), connector="cli")
        out = await e.enrich(hashes(5), deadline=2)
        await e.aclose()
        e.close()
        first = await counters(emu.url)
        assert [r.verdict == Verdict.QUOTA for r in out].count(True) == 1
        assert first["requests"] == 5 and first["by_status"]["429"] == 1  # no retry at once
        # Another process with the same state dir: the cooldown (Retry-After ~60 s) holds it.
        env = {
            **os.environ,
            "VT_API_URL": emu.url,
            "VT_API_KEY": "demo-key",
            "XDG_STATE_HOME": "/nonexistent",
        }
        conf = tmp_path / "c.toml"
        conf.write_text(f'[core]\nstate_dir = "{tmp_path}"\n[quota]\ntier = "unlimited"\n')
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "connectors.cli",
            "--config",
            str(conf),
            "lookup",
            "--format",
            "csv",
            "--deadline",
            "1",
            hashes(1, "other")[0],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 30)
        after = await counters(emu.url)
    assert proc.returncode == 0, stderr.decode()
    assert ",quota," in stdout.decode()
    assert "Retry-After" in stdout.decode() + stderr.decode()
    assert after["requests"] == first["requests"]  # nothing sent during the cooldown


async def test_two_429s_early_halve_a_premium_rate_once_and_say_so(tmp_path, caplog):
    # Seed 2: requests 3 and 4 of the first 8 are 429s (Retry-After: 1).
    faults = {"error_rates": {"QuotaExceededError": 0.25}, "seed": 2}
    async with running_emulator(EmulatorConfig(faults=faults)) as emu:
        e = Enricher(make_settings(emu.url, tmp_path, tier="premium"), connector="cli")
        with caplog.at_level(logging.WARNING, logger="connectors.core.quota"):
            out = await e.enrich(hashes(8), deadline=8)
        await e.aclose()
        status = e.governor.status()
        e.close()
        c = await counters(emu.url)
    assert c["by_status"]["429"] >= 2
    assert not [r for r in out if r.verdict in (Verdict.ERROR, Verdict.QUOTA)]
    assert status["per_minute"] == 500  # not 7: halved once for the burst
    lowered = [r.getMessage() for r in caplog.records if "lowering" in r.getMessage()]
    assert len(lowered) == 1 and "from 1000/min to 500/min" in lowered[0]


# -- every request takes a slot ----------------------------------------------------------------
async def test_ledger_counts_what_the_server_counted_with_retries_and_submissions(tmp_path):
    faults = {
        "error_rates": {"TransientError": 0.25, "ServerError": 0.1},
        "drop_rate": 0.1,
        "timeout_rate": 0.05,
        "timeout_s": 0.6,
        "seed": 5,
    }
    async with running_emulator(EmulatorConfig(faults=faults)) as emu:
        settings = make_settings(emu.url, tmp_path, tier="premium", retries=2, timeout=0.3)
        e = Enricher(settings, connector="cli")
        gw = e.gateway

        async def ignore_failure(call):
            try:
                await call
            except Exception:  # a fault that outlasted the retries: still counted
                pass

        out, *_ = await asyncio.gather(
            e.enrich(hashes(8)),
            ignore_failure(gw.reanalyse(parse(hashes(1)[0]))),
            ignore_failure(gw.reanalyse(parse("http://example.com/x"))),
            ignore_failure(gw.scan_url("http://example.org/y")),
            ignore_failure(gw.get_json("/collections/demo-apt-campaign")),
        )
        await e.aclose()
        await asyncio.sleep(0.7)  # hung answers finish (and are counted) server-side
        used = e.governor.status()["used_today"]
        e.close()
        c = await counters(emu.url)
    assert sum(r.verdict == Verdict.ERROR for r in out) < len(out)
    assert c["requests"] > 12  # retries happened
    assert used == c["requests"]


# -- budget by when requests reach the server ------------------------------------------------
class ScaledClock(Clock):
    """Time running `speed` times faster, read from one origin by the governor and the
    emulator's quota: a 60 s window passes in 60/speed real seconds."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.t0 = time.time()
        self.m0 = time.monotonic()

    def now(self) -> float:
        return self.t0 + (time.monotonic() - self.m0) * self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)


async def slow_connect_proxy(target_port: int, delay: float):
    """A loopback TCP proxy whose connections take `delay` real seconds to set up, like a
    first request that waits for imports and a TLS handshake."""

    async def pipe(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def handle(client_r, client_w):
        await asyncio.sleep(delay)
        server_r, server_w = await asyncio.open_connection("127.0.0.1", target_port)
        await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))

    return await asyncio.start_server(handle, "127.0.0.1", 0)


@pytest.mark.parametrize("together, n", [(False, 6), (True, 10)])
async def test_public_tier_never_answers_429_when_requests_leave_late(tmp_path, together, n):
    # Every new connection takes 15 s (scaled) to set up. One at a time: slots 5 and 6 come one
    # window after the 4th arrived. Together: 4 slow connections at once, then reuse.
    clock = ScaledClock(60)  # public tier: 4 per 60 s window = per real second
    async with running_emulator(EmulatorConfig(default_tier="public")) as emu:
        emu.emulator.quotas["demo-key"] = TierQuota(4, 500, clock=clock.now)
        port = int(emu.url.rsplit(":", 1)[1])
        proxy = await slow_connect_proxy(port, delay=0.25)
        url = f"http://127.0.0.1:{proxy.sockets[0].getsockname()[1]}"
        try:
            e = Enricher(make_settings(url, tmp_path, tier="public"), connector="cli", clock=clock)
            out = []
            if together:
                out = await e.enrich(hashes(n))
            else:
                for value in hashes(n):
                    out += await e.enrich([value])
            await e.aclose()
            e.close()
        finally:
            proxy.close()
            await proxy.wait_closed()
        c = await counters(emu.url)
    assert c["by_status"].get("429", 0) == 0
    assert c["requests"] == n
    assert not [r for r in out if r.verdict in (Verdict.ERROR, Verdict.QUOTA)]


# -- the emulator says its tier --------------------------------------------------------------
def auto_settings(url, tmp_path):
    s = config.for_emulator(config.from_mapping({}, env={}), url, str(tmp_path))
    assert s.quota.tier == "auto"  # the default
    return s


async def test_auto_tier_uses_the_local_emulators_tier(tmp_path):
    async with running_emulator() as emu:  # enforces no quota ("unlimited")
        e = Enricher(auto_settings(emu.url, tmp_path), connector="cli")
        out = await e.enrich(hashes(10), deadline=1)  # public limits would answer 6 quota
        await e.aclose()
        e.close()
        c = await counters(emu.url)
    assert not [r for r in out if r.verdict == Verdict.QUOTA]
    assert e.governor.tier == "unlimited" and e.governor.unlimited
    assert c["requests"] == 10  # asking for the tier is not an API call


async def test_auto_tier_adopts_an_emulator_tiers_numbers(tmp_path):
    config_ = EmulatorConfig(default_tier="premium", tier_limits={"premium": (7, 300)})
    async with running_emulator(config_) as emu:
        e = Enricher(auto_settings(emu.url, tmp_path), connector="cli")
        out = await e.enrich(hashes(9), deadline=1)
        await e.aclose()
        status = e.governor.status()
        e.close()
        c = await counters(emu.url)
    assert [r.verdict == Verdict.QUOTA for r in out].count(True) == 2
    assert status["per_minute"] == 7 and status["per_day"] == 300 and status["used_today"] == 7
    assert c["by_status"] == {"200": 7}


async def test_a_wait_is_said_once_on_stderr(tmp_path, caplog):
    clock = ScaledClock(60)  # the public tier's minute passes in one real second
    async with running_emulator(EmulatorConfig(default_tier="public")) as emu:
        emu.emulator.quotas["demo-key"] = TierQuota(4, 500, clock=clock.now)
        e = Enricher(auto_settings(emu.url, tmp_path), connector="cli", clock=clock)
        with caplog.at_level(logging.WARNING, logger="connectors.core.quota"):
            out = await e.enrich(hashes(7))
        await e.aclose()
        e.close()
        c = await counters(emu.url)
    assert not [r for r in out if r.verdict == Verdict.QUOTA] and c["requests"] == 7
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("rate-limited")]
    assert len(said) == 1, said
    m = re.match(r"rate-limited: public tier 4/min, next slot in (\d+) s, 496 left today", said[0])
    assert m and 45 <= int(m.group(1)) <= 60, said  # scaled time: 10 ms real are 0.6 s here


def test_cli_lookup_under_a_429_storm_ends_as_quota(tmp_path):
    # The reproduction: every answer a 429, `vtconnect lookup X --deadline 5`.
    from click.testing import CliRunner

    from connectors.cli import main
    from connectors.emulator.server import EmulatorThread

    emu = EmulatorThread(EmulatorConfig(faults={"error_rates": {"QuotaExceededError": 1.0}}))
    url = emu.start()
    try:
        conf = tmp_path / "c.toml"
        conf.write_text(f'[core]\nstate_dir = "{tmp_path}"\n[quota]\ntier = "unlimited"\n')
        env = {"VT_API_URL": url, "VT_API_KEY": "demo-key", "VTCONNECT_CONFIG": str(conf)}
        args = ["lookup", "--format", "csv", "--deadline", "5", hashes(1)[0]]
        r = CliRunner().invoke(main, args, env=env, catch_exceptions=False)
        c = asyncio.run(counters(url))
    finally:
        emu.stop()
    assert r.exit_code == 0, r.output
    assert ",quota," in r.stdout
    assert c["requests"] == 3
