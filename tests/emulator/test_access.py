"""Keys, tiers and quotas, as VirusTotal enforces them."""

from __future__ import annotations

import pytest

from connectors.emulator.app import EmulatorConfig
from connectors.emulator.quota import TierQuota
from connectors.emulator.server import running_emulator

from .conftest import call

INTELLIGENCE = (
    "/api/v3/intelligence/search?query=p:5%2B",
    "/api/v3/intelligence/hunting_notification_files",
    "/api/v3/ioc_stream",
)


async def test_public_key_gets_429_with_retry_after_after_four_a_minute(emu):
    codes = [(await call(emu, f"/api/v3/domains/d{i}.com", key="pub"))[0] for i in range(4)]
    assert set(codes) <= {200, 404}
    status, headers, body = await call(emu, "/api/v3/domains/x.com", key="pub")
    assert status == 429 and body["error"]["code"] == "QuotaExceededError"
    assert 1 <= int(headers["Retry-After"]) <= 61
    status, _, _ = await call(emu, "/api/v3/domains/x.com", key="prem")  # per key
    assert status in (200, 404)


@pytest.mark.parametrize("path", INTELLIGENCE)
async def test_intelligence_endpoints_are_forbidden_for_public_keys(emu, path):
    status, _, body = await call(emu, path, key="pub")
    assert status == 403 and body["error"]["code"] == "ForbiddenError"
    status, _, body = await call(emu, path, key="prem")
    assert status == 200 and isinstance(body["data"], list)


async def test_key_errors():
    config = EmulatorConfig(keys={"good": "unlimited"}, accept_any_key=False)
    async with running_emulator(config) as emu:
        status, _, body = await call(emu, "/api/v3/domains/example.com", key=None)
        assert status == 401 and body["error"]["code"] == "AuthenticationRequiredError"
        status, _, body = await call(emu, "/api/v3/domains/example.com", key="bad")
        assert status == 401 and body["error"]["code"] == "WrongCredentialsError"
        status, _, body = await call(emu, "/api/v3/domains/example.com", key="disabled-key")
        assert status == 403 and body["error"]["code"] == "UserNotActiveError"
        status, _, _ = await call(emu, "/api/v3/domains/example.com", key="good")
        assert status == 200


async def test_configurable_tier_limits():
    config = EmulatorConfig(default_tier="premium", tier_limits={"premium": (2, 100)})
    async with running_emulator(config) as emu:
        codes = [(await call(emu, "/api/v3/domains/example.com"))[0] for _ in range(3)]
        assert codes == [200, 200, 429]
    with pytest.raises(ValueError):
        EmulatorConfig(default_tier="gold")


def test_tier_quota_minute_window_on_a_fake_clock():
    now = [1000.0]
    q = TierQuota.for_tier("public", clock=lambda: now[0])
    assert [q.take() for _ in range(5)] == [None] * 4 + ["QuotaExceededError"]
    assert 59 <= q.retry_after() <= 61
    now[0] += 30
    assert q.take() == "QuotaExceededError"
    assert 29 <= q.retry_after() <= 31
    now[0] += 30.5  # the first four leave the sliding window
    assert q.take() is None
    unlimited = TierQuota.for_tier("unlimited", clock=lambda: now[0])
    assert all(unlimited.take() is None for _ in range(10_000))


def test_tier_quota_daily_reset_at_midnight_utc():
    midnight = 86400 * 20000
    now = [midnight - 120.0]  # two minutes before 00:00 UTC
    q = TierQuota(4, 5, clock=lambda: now[0])
    assert [q.take() for _ in range(5)] == [None] * 4 + ["QuotaExceededError"]
    now[0] += 61
    assert q.take() is None  # the fifth of the day
    assert q.take() == "QuotaExceededError"  # the day is spent, whatever the minute says
    assert q.retry_after() == int(midnight - now[0]) + 1
    now[0] = midnight - 0.001
    assert q.take() == "QuotaExceededError"
    now[0] = midnight + 0.5
    assert q.take() is None  # a new UTC day
