"""Risky indicators into Splunk Enterprise Security's threat intelligence ([es_threat_intel]),
through the fake splunkd's ES endpoints (/services/data/threat_intel/item/...).

The request shapes follow ES's REST API reference ("Threat Intelligence API reference",
/services/data/threat_intel/item/{threat_intel_collection} and .../{item_key}; ES 7.x, and 8.x
under "Deprecated API reference"): GET with `item`, a JSON-encoded object of field/value pairs
to match, in the query string; PUT .../{item_key} with `item`, the fields to update (one of the
collection's important fields among them: ip or domain for ip_intel, url for http_intel,
file_hash for file_intel); answers {"message", "status"}, "No matching entries found in
kvstore." when nothing matches; the capability edit_threat_intel_collections. POST adds rows
with the form field `item`, a JSON-encoded list of rows, answered 201, as shipped integrations
send it (ThreatQuotient's and EclecticIQ's Splunk apps: form-encoded `item=json.dumps(rows)`).
The upload endpoint (/services/data/threat_intel/upload, a base64 file for a [threatlist]
input) is not used: it only stores a file for a threat list input to parse later."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional

from . import harness
from .conftest import API_KEY, BuiltApp, base_python, conf_for
from .harness import ANALYST_KEY, FakeSplunkd, run_search

EICAR_MD5 = "44d88612fea8a8f36de82e1278abb02f"
FORCED = "evil-es.example.net"  # malicious by [lists] force_malicious, no lookup
# Thresholds no engine count reaches: EICAR and 203.0.113.66 become suspicious.
POLICY = {"malicious_min": "1000", "malicious_percent": "100"}
VALUES = [FORCED, EICAR_MD5, "203.0.113.66", "example.org", "10.1.2.3"]
ITEM = "/services/data/threat_intel/item/"


def fake(
    app: BuiltApp, emulator_url: str, es: Optional[Dict[str, str]] = None, handlers: bool = False
) -> FakeSplunkd:
    """handlers: the app's REST handlers and ACLs run (an analyst's search needs them)."""
    conf = conf_for(
        app, emulator_url,
        {"policy": POLICY, "lists": {"force_malicious": FORCED}, "es_threat_intel": es or {}},
    )  # fmt: skip
    extra = {"app_dir": app.app_dir, "python": base_python()} if handlers else {}
    return FakeSplunkd(conf=conf, passwords={"api_key": API_KEY}, **extra)


def search(app: BuiltApp, sd: FakeSplunkd, home: Path, session_key: str = harness.SESSION_KEY):
    _, replies, rc = run_search(
        app.app_dir, sd, ["field=dest"], [[{"dest": v} for v in VALUES]], python=base_python(),
        env=harness.command_env(home), session_key=session_key,
    )  # fmt: skip
    assert rc == 0
    verdicts = {r["dest"]: r["vt_verdict"] for r in replies[-1].records}
    assert verdicts == {
        FORCED: "malicious", EICAR_MD5: "suspicious", "203.0.113.66": "suspicious",
        "example.org": "harmless", "10.1.2.3": "skipped",
    }  # fmt: skip
    return replies[-1].messages


def rows(sd: FakeSplunkd) -> List[Dict[str, object]]:
    assert sd.es is not None
    out = []
    for name, coll in sorted(sd.es.items()):
        for row in coll.values():
            out.append({k: v for k, v in row.items() if k not in ("_key", "_user", "time")})
            out[-1]["collection"] = name
    return out


def test_off_by_default_makes_no_call(built_app, emulator_url, splunk_home):
    with fake(built_app, emulator_url) as sd:
        sd.es = {}
        assert search(built_app, sd, splunk_home) == []
        assert sd.es_calls == [] and sd.es == {}


def test_malicious_only_by_default_and_idempotent(built_app, emulator_url, splunk_home):
    with fake(built_app, emulator_url, {"enabled": "true"}) as sd:
        sd.es = {}
        assert search(built_app, sd, splunk_home) == []
        match = {"domain": FORCED, "threat_key": "vtconnect"}
        assert [(m, p, i if m == "GET" else None) for m, p, i in sd.es_calls] == [
            ("GET", ITEM + "ip_intel", match), ("POST", ITEM + "ip_intel", None),
        ]  # fmt: skip
        posted = sd.es_calls[1][2]
        assert isinstance(posted, list) and len(posted) == 1
        assert set(posted[0]) == {"domain", "threat_key", "weight", "time", "description"}
        assert rows(sd) == [
            {
                "collection": "ip_intel", "domain": FORCED, "threat_key": "vtconnect",
                "weight": 60, "description": posted[0]["description"],
            }
        ]  # fmt: skip
        assert posted[0]["description"].startswith("VirusTotal: malicious, score ")
        # The same indicator again: found by value and threat_key, updated in place.
        first_time = next(iter(sd.es["ip_intel"].values()))["time"]
        sd.es_calls.clear()
        assert search(built_app, sd, splunk_home) == []
        key = next(iter(sd.es["ip_intel"]))
        assert [(m, p) for m, p, _ in sd.es_calls] == [
            ("GET", ITEM + "ip_intel"), ("PUT", f"{ITEM}ip_intel/{key}"),
        ]  # fmt: skip
        assert len(sd.es["ip_intel"]) == 1
        assert sd.es["ip_intel"][key]["time"] >= first_time


def test_suspicious_and_score_settings(built_app, emulator_url, splunk_home):
    es = {"enabled": "true", "min_verdict": "suspicious", "threat_key": "vt-hub", "weight": "40"}
    with fake(built_app, emulator_url, es) as sd:
        sd.es = {"ip_intel": {"other:1": {"_key": "other:1", "ip": "203.0.113.66",
                                          "threat_key": "other_feed"}}}  # fmt: skip
        assert search(built_app, sd, splunk_home, session_key=harness.SESSION_KEY) == []
        got = sorted((r["collection"], r.get("ip") or r.get("domain") or r.get("file_hash"),
                      r["threat_key"], r.get("weight")) for r in rows(sd))  # fmt: skip
        assert got == sorted([
            ("file_intel", EICAR_MD5, "vt-hub", 40),
            ("ip_intel", "203.0.113.66", "other_feed", None),  # another source's row stays
            ("ip_intel", "203.0.113.66", "vt-hub", 40),
            ("ip_intel", FORCED, "vt-hub", 40),
        ])  # fmt: skip
        posts = {p for m, p, _ in sd.es_calls if m == "POST"}
        assert posts == {ITEM + "ip_intel", ITEM + "file_intel"}
    with fake(built_app, emulator_url, {**es, "min_score": "100"}) as sd:
        sd.es = {}
        search(built_app, sd, splunk_home)
        assert [r.get("domain") for r in rows(sd)] == [FORCED]  # forced: score 100


def test_es_missing_is_one_warning(built_app, emulator_url, splunk_home):
    with fake(built_app, emulator_url, {"enabled": "true", "min_verdict": "suspicious"}) as sd:
        messages = search(built_app, sd, splunk_home)  # sd.es is None: no ES on this host
        assert len(messages) == 1 and messages[0][0] == "WARN"
        assert "not written to Enterprise Security" in messages[0][1]
        assert "not on this search head" in messages[0][1]
        assert [m for m, _, _ in sd.es_calls] == ["GET"]  # stops at the first 404


def test_user_without_es_capability_is_one_warning(built_app, emulator_url, splunk_home):
    with fake(built_app, emulator_url, {"enabled": "true"}, handlers=True) as sd:
        sd.es = {}
        messages = search(built_app, sd, splunk_home, session_key=ANALYST_KEY)
        assert len(messages) == 1 and "edit_threat_intel_collections" in messages[0][1]
        assert sd.es == {}


def test_config_page_checks_the_section(built_app):
    import sys

    sys.path.insert(0, str(built_app.app_dir / "bin"))
    sys.path.insert(0, str(built_app.app_dir / "lib"))
    from vtlookup_support import config_page

    defaults = config_page.read_conf_file(str(built_app.app_dir / "default" / "vtlookup.conf"))
    assert config_page.check(defaults, defaults) == []
    bad = config_page.merge(defaults, {"es_threat_intel": {"min_verdict": "harmless",
                                                           "weight": "0"}})  # fmt: skip
    keys = sorted(e["key"] for e in config_page.check(bad, defaults))
    assert keys == ["min_verdict", "weight"]
    assert json.dumps(defaults["es_threat_intel"]["enabled"]) == '"false"'  # off by default
