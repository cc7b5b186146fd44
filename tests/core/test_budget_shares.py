"""[quota.shares]: daily reservations per connector, validated, enforced through the shared ledger
(two enrichers on one state dir stand for two processes) and shown by `vtconnect quota`."""

from __future__ import annotations

import hashlib
import sys
from dataclasses import replace

import pytest
from click.testing import CliRunner

from connectors.cli import main
from connectors.core import config
from connectors.core.enricher import Enricher
from connectors.core.verdict import Verdict


def test_shares_are_read():
    s = config.from_mapping({"quota": {"shares": {"webhook": 0.4, "splunk": 0.3}}}, env={})
    assert dict(s.quota.shares) == {"webhook": 0.4, "splunk": 0.3}
    assert config.from_mapping({}, env={}).quota.shares == ()


@pytest.mark.parametrize(
    "shares, message",
    [
        ({"splnk": 0.3}, "unknown connector quota.shares.splnk"),
        ({"webhook": 1.5}, "quota.shares.webhook must be a number from 0 to 1"),
        ({"webhook": -0.1}, "quota.shares.webhook must be a number from 0 to 1"),
        ({"webhook": "half"}, "quota.shares.webhook must be a number from 0 to 1"),
        ({"webhook": True}, "quota.shares.webhook must be a number from 0 to 1"),
        (
            {"webhook": 0.7, "splunk": 0.5},
            r"add up to 1\.2, more than 1 \(largest: quota.shares.webhook",
        ),
        (3, r"\[quota.shares\] must be a table"),
    ],
)
def test_bad_shares_name_the_key(shares, message):
    with pytest.raises(config.ConfigError, match=message):
        config.from_mapping({"quota": {"shares": shares}}, env={})


def test_bad_shares_in_a_file_exit_2(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[quota.shares]\nwebhook = 0.8\nsplunk = 0.8\n")
    r = CliRunner().invoke(main, ["--config", str(cfg), "quota"])
    assert r.exit_code == 2 and "quota.shares" in r.output and "Traceback" not in r.output


def values(n, salt):
    return [hashlib.sha256(f"{salt}{i}".encode()).hexdigest() for i in range(n)]


async def test_shares_hold_across_processes_and_show_in_quota(emulator_url, tmp_path):
    doc = {"quota": {"tier": "premium", "per_day": 10, "shares": {"webhook": 0.5}}}
    s = config.for_emulator(config.from_mapping(doc, env={}), emulator_url, str(tmp_path))
    s = replace(s, virustotal=replace(s.virustotal, api_key=config.SecretStr("shares-key")))
    splunk = Enricher(s, connector="splunk")
    out = await splunk.enrich(values(8, "splunk"), deadline=2)
    await splunk.aclose()
    splunk.close()
    # Only the unreserved half of the day: the webhook's 5 are kept for it.
    assert [r.verdict == Verdict.QUOTA for r in out].count(True) == 3
    assert "connector splunk has used its daily share" in out[-1].reason
    webhook = Enricher(s, connector="webhook")  # another process on the same ledger
    out = await webhook.enrich(values(6, "webhook"), deadline=2)
    await webhook.aclose()
    webhook.close()
    assert [r.verdict == Verdict.QUOTA for r in out].count(True) == 1

    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[core]\nstate_dir = "{tmp_path}"\n'
        '[quota]\ntier = "premium"\nper_day = 10\n[quota.shares]\nwebhook = 0.5\n'
    )
    env = {"VT_API_KEY": "shares-key", "VT_API_URL": emulator_url}
    r = CliRunner().invoke(main, ["--config", str(cfg), "quota"], env=env)
    assert r.exit_code == 0, r.output
    assert "used_today: 10" in r.output
    assert "webhook: 0.5 = 5 reserved, 5 used" in r.output
    assert "unreserved: 5" in r.output


def test_config_check_shows_shares_as_a_table_that_loads_again(tmp_path):
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib

    cfg = tmp_path / "c.toml"
    cfg.write_text("[quota.shares]\nwebhook = 0.4\nsplunk = 0.3\n")
    r = CliRunner().invoke(main, ["config", "check", "--config", str(cfg)], env={})
    assert r.exit_code == 0, r.output
    shown = tomllib.loads(r.stdout)
    assert shown["quota"]["shares"] == {"webhook": 0.4, "splunk": 0.3}
    again = config.from_mapping(shown, env={})
    assert dict(again.quota.shares) == {"webhook": 0.4, "splunk": 0.3}
