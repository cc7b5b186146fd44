"""| vtlookup and vtlookup.conf's [lists] and [privacy] extract_email_domains, end to end: the
built app's command over protocol v2, the fake splunkd serving the conf, the emulator counting."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from connectors.core.config import ConfigError, ListsSettings

from .conftest import API_KEY, conf_for
from .harness import FakeSplunkd
from .test_vtlookup import api_calls, by_value, search

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "splunk_app" / "bin"))
from vtlookup_support import settings as app_settings  # noqa: E402


def test_conf_lists_mirror_the_toml_section(tmp_path):
    conf = app_settings.read_conf_files(str(ROOT / "splunk_app"))
    core, _ = app_settings.build(conf, {"api_key": "k"}, str(tmp_path))
    assert core.lists == ListsSettings()  # shipped empty
    assert core.privacy.extract_email_domains is False
    conf["lists"] = {"ignore": " .example.org, 10.0.0.0/8 ,", "force_harmless": "8.8.8.8"}
    core, _ = app_settings.build(conf, {"api_key": "k"}, str(tmp_path))
    assert core.lists == ListsSettings(
        ignore=(".example.org", "10.0.0.0/8"), force_harmless=("8.8.8.8",)
    )
    conf["lists"] = {"ignore": "10.0.0.1/8"}
    with pytest.raises(ConfigError, match="lists.ignore: bad network '10.0.0.1/8'"):
        app_settings.build(conf, {"api_key": "k"}, str(tmp_path))


def test_lists_and_email_domains_in_a_search(built_app, splunk_home, emulator_url):
    overrides = {"lists": {"ignore": ".example.org", "force_harmless": "example.net"}}
    conf = conf_for(built_app, emulator_url, overrides)
    values = ["www.example.org", "https://example.org/x", "example.net"]
    with FakeSplunkd(conf=conf, passwords={"api_key": API_KEY}) as splunkd:
        before = api_calls(emulator_url)
        _, replies, rc = search(
            built_app, splunkd, splunk_home, ["field=dest"], [[{"dest": v} for v in values]]
        )
        assert rc == 0
        assert api_calls(emulator_url) == before  # listed: no call
        got = by_value(replies[0].records)
        assert got["www.example.org"]["vt_verdict"] == "skipped"
        assert "[lists] ignore entry '.example.org'" in got["https://example.org/x"]["vt_reason"]
        assert got["example.net"]["vt_verdict"] == "harmless"
        raw = [{"_raw": "mail for alice@corp.example.com"}]
        _, replies, rc = search(built_app, splunkd, splunk_home, ["field=_raw", "extract=t"], [raw])
        assert rc == 0 and replies[0].records[0]["vt_kind"] == ""  # an address's domain: not sent
    conf["privacy"]["extract_email_domains"] = "true"
    with FakeSplunkd(conf=conf, passwords={"api_key": API_KEY}) as splunkd:
        _, replies, rc = search(built_app, splunkd, splunk_home, ["field=_raw", "extract=t"], [raw])
        assert rc == 0 and replies[0].records[0]["vt_kind"] == "domain"
