"""Fault injection of each kind, set at start and at run time, and the control endpoints."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
import vt

from connectors.emulator.app import EmulatorConfig
from connectors.emulator.faults import Faults
from connectors.emulator.server import running_emulator
from connectors.emulator.state import key_label

from .conftest import EICAR, call

PATH = f"/api/v3/files/{EICAR[2]}"


async def set_faults(emu, config):
    async with (
        aiohttp.ClientSession() as s,
        s.post(emu.url + "/_emulator/faults", json=config) as r,
    ):
        return r.status, await r.json()


@pytest.mark.parametrize(
    "code,status",
    [
        ("TransientError", 503),
        ("DeadlineExceededError", 504),
        ("TooManyRequestsError", 429),
        ("QuotaExceededError", 429),
        ("NotFoundError", 404),
    ],
)
async def test_error_codes_in_virustotal_shape(emu, code, status):
    assert (await set_faults(emu, {"error_rates": {code: 1.0}}))[0] == 200
    got, headers, body = await call(emu, PATH)
    assert got == status and body == {"error": {"code": code, "message": "Injected fault"}}
    assert headers["X-VT-Emulator"] == "1"
    if status == 429:
        assert headers["Retry-After"] == "1"


async def test_plain_server_error_500(emu):
    await set_faults(emu, {"error_rates": {"ServerError500": 1.0}})
    status, _, body = await call(emu, PATH)
    assert status == 500 and isinstance(body, str)


async def test_vt_py_sees_the_injected_codes(emu, client):
    await set_faults(emu, {"error_rates": {"TooManyRequestsError": 1.0}})
    with pytest.raises(vt.APIError) as exc:
        await client.get_json_async(f"/files/{EICAR[0]}")
    assert exc.value.code == "TooManyRequestsError"
    # vt-py 0.22 turns every 5xx into code "ServerError" and keeps the body as the message
    await set_faults(emu, {"error_rates": {"DeadlineExceededError": 1.0}})
    with pytest.raises(vt.APIError) as exc:
        await client.get_json_async(f"/files/{EICAR[0]}")
    assert exc.value.code == "ServerError" and "DeadlineExceededError" in exc.value.message


async def test_latency_with_jitter():
    config = EmulatorConfig(faults={"latency_ms": 150, "jitter_ms": 50})
    async with running_emulator(config) as emu:
        started = time.monotonic()
        status, _, _ = await call(emu, PATH)
        elapsed = time.monotonic() - started
    assert status == 200 and 0.09 <= elapsed < 1.0


async def test_timeout_hangs_then_answers(emu):
    await set_faults(emu, {"timeout_rate": 1.0, "timeout_s": 5})
    with pytest.raises(asyncio.TimeoutError):
        async with aiohttp.ClientSession(headers={"X-Apikey": "k"}) as s:
            await s.get(emu.url + PATH, timeout=aiohttp.ClientTimeout(total=0.3))
    await set_faults(emu, {"timeout_rate": 1.0, "timeout_s": 0.2})
    started = time.monotonic()
    status, _, _ = await call(emu, PATH)
    assert status == 200 and time.monotonic() - started >= 0.2


async def test_dropped_connection(emu):
    await set_faults(emu, {"drop_rate": 1.0})
    with pytest.raises(aiohttp.ClientError):
        await call(emu, PATH)
    _, _, counters = await call(emu, "/_emulator/counters")
    assert counters["by_status"].get("dropped", 0) >= 1  # aiohttp may retry an idempotent GET
    assert set(counters["by_status"]) == {"dropped"}


async def test_malformed_json_with_200(emu, client):
    await set_faults(emu, {"malformed_rate": 1.0})
    status, _, body = await call(emu, PATH)
    assert status == 200 and isinstance(body, str) and body.startswith('{"data"')
    with pytest.raises(Exception):  # noqa: B017 - vt-py fails to decode it, whatever the type
        await client.get_json_async(f"/files/{EICAR[2]}")


async def test_rates_are_deterministic_when_seeded():
    def run():
        f = Faults(error_rates={"TransientError": 0.3}, drop_rate=0.1, seed=42)
        return [f.pick() for _ in range(200)]

    first = run()
    assert first == run()
    assert 40 <= first.count("TransientError") <= 80 and 5 <= first.count("drop") <= 40


async def test_fault_config_is_validated_and_readable(emu):
    for bad in ({"error_rates": {"Nope": 1}}, {"latency": 5}, {"drop_rate": 2.0}, [1]):
        status, body = await set_faults(emu, bad)
        assert status == 400 and body["error"]["code"] == "InvalidArgumentError"
    await set_faults(emu, {"latency_ms": 1, "error_rates": {"TransientError": 0.0}})
    _, _, current = await call(emu, "/_emulator/faults")
    assert current["latency_ms"] == 1 and current["drop_rate"] == 0
    await set_faults(emu, {})
    assert (await call(emu, PATH))[0] == 200


async def test_counters_and_reset(emu):
    await call(emu, PATH)
    await call(emu, "/api/v3/domains/example.com", key="pub")
    await call(emu, "/api/v3/files/zz")
    await call(emu, PATH, key=None)
    status, headers, c = await call(emu, "/_emulator/counters")
    assert status == 200 and headers["X-VT-Emulator"] == "1"
    assert c["requests"] == 4
    assert c["by_endpoint"]["GET /api/v3/{collection}/{id}"] == 4
    assert c["by_status"] == {"200": 2, "400": 1, "401": 1}
    assert c["by_key"][key_label("test-key")] == 2 and c["by_key"][key_label("pub")] == 1
    assert c["by_key"]["-"] == 1
    await call(emu, f"/api/v3/files/{EICAR[0]}/analyse", method="POST")
    before = (await call(emu, f"/api/v3/files/{EICAR[0]}"))[2]["data"]["attributes"]
    async with aiohttp.ClientSession() as s, s.post(emu.url + "/_emulator/reset") as r:
        assert r.status == 200
    c = (await call(emu, "/_emulator/counters"))[2]
    assert c == {"requests": 0, "by_endpoint": {}, "by_status": {}, "by_key": {}}
    after = (await call(emu, f"/api/v3/files/{EICAR[0]}"))[2]["data"]["attributes"]
    assert after["last_analysis_date"] < before["last_analysis_date"]  # the override is gone
    status, _, health = await call(emu, "/_emulator/health", key=None)
    assert status == 200 and health["ok"] is True
