"""| vtlookup with [remote] url: the values go to a real `vtconnect serve --webhook --taxii` hub
process (POST /v1/enrich, bearer token from storage/passwords through the app's credential
endpoint), never to VirusTotal from the search head. The hub's verdict log names the client and
its TAXII feed publishes what the search found; an unreachable hub or a refused token gives
vt_verdict=error and one warning, never a failed search."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Dict, List

import pytest

from tests.processes import Served, env_for

from . import harness
from .conftest import API_KEY, BuiltApp, base_python, conf_for, interpreter
from .harness import ANALYST_KEY, FakeSplunkd, run_search
from .test_vtlookup import EICAR_MD5, api_calls, by_value

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "splunk_app" / "bin"))
from vtlookup_support import config_page, fields, hub  # noqa: E402

TOKEN = "splunk-shc-token-0123456789abcdef"
FEED = str(uuid.UUID(int=0x5D4C3B2A19084F7E8D6C5B4A39281706, version=4))
VALUES = [EICAR_MD5, "example.com", "http://example.com/path?q=1", "198.51.100.7",
          "0" * 64, "no way", "", "a" * 9000]  # fmt: skip
CHUNK = [{"dest": v} for v in VALUES]


def hub_config(tmp: Path) -> Path:
    cfg = tmp / "hub.toml"
    cfg.write_text(f"""
[core]
state_dir = "{tmp / "hub-state"}"
[quota]
tier = "unlimited"
[privacy]
allow_documentation_ranges = true
[webhook]
port = 0
[[api.clients]]
name = "splunk-shc"
token_sha256 = "{hashlib.sha256(TOKEN.encode()).hexdigest()}"
[taxii]
port = 0
poll_seconds = 0.05
[[taxii.collections]]
id = "{FEED}"
title = "Splunk finds"
public = true
publish = ["malicious", "suspicious"]
test = true
""")
    return cfg


@pytest.fixture(scope="module")
def hub_proc(tmp_path_factory, emulator_url):
    tmp = tmp_path_factory.mktemp("hub")
    env = env_for(hub_config(tmp), emulator_url, tmp)
    served = Served(["serve", "--webhook", "--taxii"], env, tmp / "serve.log")
    try:
        urls = served.wait_listening(2)
        yield urls["webhook"], urls["taxii"], tmp / "hub-state"
    finally:
        served.stop()
    assert "Traceback" not in served.log(), served.log()[-4000:]


def remote_conf(app: BuiltApp, url: str) -> Dict[str, Dict[str, str]]:
    # The search head's own VirusTotal address goes nowhere: only the hub may look up.
    conf = conf_for(app, "http://127.0.0.1:9", {"remote": {"url": url}})
    conf["command"]["answers_ttl"] = "0"  # every search asks the hub
    return conf


def searched(app, sd, home, chunks, session_key=harness.SESSION_KEY, python=None):
    info, replies, rc = run_search(
        app.app_dir, sd, ["field=dest"], chunks, python=python or base_python(),
        env=harness.command_env(home), session_key=session_key,
    )  # fmt: skip
    assert rc == 0 and not [m for m in info.messages if m[0] in ("ERROR", "FATAL")], info.messages
    return info, replies


def warnings(replies) -> List[str]:
    return [m[1] for r in replies for m in r.messages if m[0] == "WARN"]


def test_a_remote_search_answers_as_a_direct_one_and_reaches_the_hubs_feed(
    built_app, emulator_url, hub_proc, splunk_home, tmp_path
):
    hub_url, taxii_url, hub_state = hub_proc
    # The same search straight to VirusTotal (the emulator), on a search head of its own.
    direct_conf = conf_for(built_app, emulator_url, {"command": {"answers_ttl": "0"}})
    direct_conf["command"]["state_dir"] = str(tmp_path / "direct")
    with FakeSplunkd(conf=direct_conf, passwords={"api_key": API_KEY}) as sd:
        _, replies = searched(built_app, sd, splunk_home, [CHUNK])
        direct = replies[0].records
    calls = api_calls(emulator_url)
    # Now through the hub, as an analyst: the token comes from the app's credential endpoint.
    with FakeSplunkd(
        conf=remote_conf(built_app, hub_url), passwords={"remote_token": TOKEN},
        app_dir=built_app.app_dir, python=base_python(),
    ) as sd:  # fmt: skip
        _, replies = searched(built_app, sd, splunk_home, [CHUNK[:4], CHUNK[4:]], ANALYST_KEY)
        assert not sd.handler_errors, sd.handler_errors
        assert sd.count("vtconnect/credential") == 1
        assert not sd.kv.get("vtconnect_cache")  # the hub's cache is the shared one
    remote = [r for reply in replies for r in reply.records]
    assert api_calls(emulator_url) > calls  # the hub looked the values up
    assert remote == direct, [
        (d["dest"], k, d[k], r[k]) for d, r in zip(direct, remote) for k in d if d[k] != r[k]
    ]
    got = by_value(remote)
    assert got[EICAR_MD5]["vt_verdict"] == "malicious" and got["no way"]["vt_verdict"] == "skipped"
    assert not warnings(replies)

    # The hub's verdict log names the Splunk client...
    with sqlite3.connect(hub_state / "cache.db") as db:
        logged = set(db.execute("SELECT connector, value FROM verdict_log"))
    assert {c for c, _ in logged} == {"splunk-shc"}
    assert any(EICAR_MD5 in v or v.startswith("275a021b") for _, v in logged), logged
    # ...and its TAXII feed publishes what the search found malicious.
    url = f"{taxii_url}/api/collections/{FEED}/objects/?match[type]=indicator"
    patterns: List[str] = []
    end = time.monotonic() + 30
    while time.monotonic() < end:
        req = urllib.request.Request(url, headers={"Accept": "application/taxii+json;version=2.1"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            patterns = [o["pattern"] for o in json.load(resp).get("objects", [])]
        if any(EICAR_MD5 in p or "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
               in p for p in patterns):  # fmt: skip
            break
        time.sleep(0.1)
    assert any("file:hashes" in p for p in patterns), patterns


@pytest.mark.parametrize("version", ["current", "3.9"])
def test_an_unreachable_hub_gives_errors_and_one_warning(built_app, splunk_home, version):
    python = base_python() if version == "current" else interpreter(version)
    conf = remote_conf(built_app, "http://127.0.0.1:9")  # discard port: nothing listens
    with FakeSplunkd(conf=conf, passwords={"remote_token": TOKEN}) as sd:
        chunks = [CHUNK, [{"dest": "example.org"}], [{"dest": EICAR_MD5}]]
        _, replies = searched(built_app, sd, splunk_home, chunks, python=python)
    records = [r for reply in replies for r in reply.records]
    assert len(records) == len(VALUES) + 2
    verdicts = {r["dest"]: r["vt_verdict"] for r in records}
    assert verdicts.pop("") == "" and verdicts.pop("a" * 9000) == "skipped"  # never sent
    assert set(verdicts.values()) == {"error"}, verdicts
    reasons = {r["vt_reason"] for r in records if r["vt_verdict"] == "error"}
    assert reasons == {next(iter(reasons))} and "cannot reach the hub at http://127.0.0.1:9" in (
        next(iter(reasons))
    )
    said = warnings(replies)
    assert len(said) == 1 and "vt_verdict=error" in said[0] and "cannot reach the hub" in said[0]
    log = (splunk_home / "var" / "log" / "splunk" / "vtlookup.log").read_text()
    assert "cache=hub" in log and "api_calls=0" in log


def test_a_refused_token_gives_errors_and_one_warning(built_app, hub_proc, splunk_home):
    hub_url = hub_proc[0]
    conf = remote_conf(built_app, hub_url)
    with FakeSplunkd(conf=conf, passwords={"remote_token": "not-the-token"}) as sd:
        _, replies = searched(built_app, sd, splunk_home, [CHUNK[:2], CHUNK[2:]])
    records = [r for reply in replies for r in reply.records]
    assert {r["vt_verdict"] for r in records if 0 < len(r["dest"]) < 9000} == {"error"}
    said = warnings(replies)
    assert len(said) == 1 and "rejected the token" in said[0], said


def test_a_remote_url_without_a_token_is_a_configuration_error(built_app, splunk_home):
    conf = remote_conf(built_app, "http://hub.example.net:8443")
    with FakeSplunkd(conf=conf, passwords={"api_key": API_KEY}) as sd:
        info, replies, rc = run_search(
            built_app.app_dir, sd, ["field=dest"], [CHUNK], python=base_python(),
            env=harness.command_env(splunk_home),
        )  # fmt: skip
    errors = [m[1] for m in info.messages if m[0] == "ERROR"]
    assert rc != 0 and len(errors) == 1 and "Remote hub tab" in errors[0], info.messages


@pytest.mark.parametrize(
    "url, ok",
    [
        ("", True),
        ("https://hub.example.net:8443", True),
        ("http://10.1.2.3:8080/", True),
        ("ftp://hub.example.net", False),
        ("https://user:pw@hub.example.net", False),
        ("https://hub.example.net:99999", False),
        ("hub.example.net:8443", False),
        ("https://hub.example.net/?token=x", False),
    ],
)
def test_the_configuration_page_checks_the_hub_url(built_app, url, ok):
    defaults = built_app.default_conf()
    conf = config_page.merge(defaults, {"remote": {"url": url}})
    errors = config_page.check(conf, defaults)
    assert (errors == []) is ok, errors
    if not ok:
        assert errors[0]["section"] == "remote" and errors[0]["key"] == "url"
    tab = dict((t, m) for t, m in config_page.TABS)["Remote hub"]
    assert tab == (("remote", None),)


def test_a_hub_row_renders_as_the_enrichment_it_came_from(settings):
    """fields.render of a hub's row (connectors.core.records, as the hub answers) is render of
    the Enrichment itself, for every kind and verdict the emulator gives."""
    from connectors.core.enricher import Enricher

    enricher = Enricher(settings, connector="test")
    values = [EICAR_MD5, "example.com", "http://example.com/path?q=1", "198.51.100.7", "8.8.8.8",
              "0" * 64, "no way", "evil.local"]  # fmt: skip
    try:
        results = enricher.enrich_sync(values)
    finally:
        enricher.close()
    assert {r.verdict.value for r in results} >= {"malicious", "skipped", "harmless"}
    from connectors.core.verdict import Enrichment, Verdict

    results.append(Enrichment("0" * 32, "md5", Verdict.NOT_FOUND, 0, "VirusTotal has no report",
                              "0" * 32, "0" * 32, "https://www.virustotal.com/gui/file/" + "0" * 32,
                              cached=True))  # fmt: skip
    from connectors.core.records import rows

    for enr, row in zip(results, rows(results)):  # what the hub answers
        back = hub.enrichment(enr.value, json.loads(json.dumps(row)))
        assert fields.render(back) == fields.render(enr), enr.value


def test_the_core_client_waits_as_long_as_the_hub_allows():
    from connectors.core import remote
    from connectors.hub import config as hub_config

    assert remote.MAX_DEADLINE == hub_config.MAX_DEADLINE
    assert hub.MAX_VALUE_CHARS == __import__("connectors.hub.api").hub.api.MAX_VALUE_CHARS
    assert hub.VALUES_PER_REQUEST <= hub_config.MAX_VALUES
    assert hub.BODY_BYTES < hub_config.MAX_BODY_BYTES


def test_answers_kept_from_a_hub_never_answer_a_direct_search(
    built_app, emulator_url, hub_proc, splunk_home, tmp_path
):
    conf = remote_conf(built_app, hub_proc[0])
    conf["command"].update(answers_ttl="600", state_dir=str(tmp_path / "state"))
    conf["virustotal"]["api_url"] = emulator_url  # the same in both modes
    chunk = [{"dest": "kept-from-hub.example.com"}]
    with FakeSplunkd(conf=conf, passwords={"remote_token": TOKEN, "api_key": API_KEY}) as sd:
        searched(built_app, sd, splunk_home, [chunk])  # kept on this search head
        searched(built_app, sd, splunk_home, [chunk])
        calls = api_calls(emulator_url)
        conf["remote"]["url"] = ""  # back to VirusTotal directly
        _, replies = searched(built_app, sd, splunk_home, [chunk])
    assert api_calls(emulator_url) > calls  # looked up, not taken from the hub's answer
    assert replies[0].records[0]["vt_cached"] == "0"
