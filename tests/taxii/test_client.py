"""`vtconnect taxii push` and `pull` against medallion 3.0.0 (the OASIS reference server) on
loopback, through the click group the main CLI registers."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner
from stix2validator import ValidationOptions, validate_instance
from taxii2client.v21 import Collection

from connectors.cli.taxii import taxii
from connectors.core import stix
from connectors.core.verdict import Enrichment, Verdict
from taxii.client import observables
from taxii.store import Store

from .conftest import FEED, INBOX
from .medallion_peer import PASSWORD, USER, medallion


class Obj:  # what cli.py's context object offers the sub-commands
    def __init__(self, settings):
        self.settings = settings


def cli(settings, *args, **kwargs):
    return CliRunner().invoke(taxii, list(args), obj=Obj(settings), **kwargs)


def indicator(kind, value, ago=60):
    enr = Enrichment(value=value, kind=kind, verdict=Verdict.SUSPICIOUS, score=50, reason="feed",
                     normalized=value, vt_id=value, link="https://example.org/intel")  # fmt: skip
    return stix.indicator(enr, time.time() - ago)


def stored(settings, collection):
    store = Store(settings.raw["taxii"]["store"])
    try:
        return [json.loads(o["body"]) for o in store.query(collection, limit=1000).objects]
    finally:
        store.close()


@pytest.fixture
def peer(tmp_path):
    d = tmp_path / "peer"
    d.mkdir()
    with medallion(d) as urls:
        yield urls


def test_pattern_observables():
    assert observables(
        {
            "type": "indicator",
            "pattern": "[file:hashes.'SHA-256' = 'ab' OR url:value = 'http://x.com/it\\'s']",
        }
    ) == [("file", "ab"), ("url", "http://x.com/it's")]
    assert observables({"type": "indicator", "pattern": "[broken"}) == []
    assert observables({"type": "indicator", "pattern": "[x-custom:value = 'a']"}) == []
    assert observables({"type": "indicator", "pattern": "[domain-name:value != 'a']"}) == []
    assert observables({"type": "malware"}) == []


def test_push_then_pull_with_enrichment(taxii_settings, peer):
    discovery, _ = peer
    sources = [
        indicator("md5", "44d88612fea8a8f36de82e1278abb02f"),
        indicator("domain", "example.com"),
        indicator("ipv4", "203.0.113.66"),
    ]
    local = Store(taxii_settings.raw["taxii"]["store"])
    local.add(INBOX, sources)
    local.close()
    creds = ["--user", USER, "--password", PASSWORD]
    r = cli(taxii_settings, "push", discovery, "--collection", "peer", *creds, "--from", "Inbox")
    assert r.exit_code == 0, r.output
    assert "sent=3 succeeded=3 failed=0" in r.output
    # The push position is remembered: nothing new, nothing sent.
    r = cli(taxii_settings, "push", discovery, "--collection", "peer", *creds, "--from", INBOX)
    assert r.exit_code == 0 and "sent=0" in r.output, r.output
    args = ["pull", discovery, "--collection", "peer", *creds, "--enrich", "--into", FEED]
    r = cli(taxii_settings, *args)
    assert r.exit_code == 0, r.output
    assert "pulled=3 rejected=0 enriched=3" in r.output
    again = cli(taxii_settings, *args)  # added_after remembered: nothing new to pull
    assert again.exit_code == 0 and "pulled=0" in again.output, again.output
    objs = stored(taxii_settings, FEED)
    notes = [o for o in objs if o["type"] == "note" and o["abstract"] == "VirusTotal opinion"]
    assert len(notes) == 3  # one per source indicator
    # and the risky ones carry VirusTotal's evidence (detection names) in a note of their own
    evidence = [o for o in objs if o["type"] == "note" and o not in notes]
    eicar_refs = [sources[0]["id"]]
    assert any(n["object_refs"] == eicar_refs and "Detections" in n["content"] for n in evidence)
    eicar_note = next(n for n in notes if n["object_refs"] == [sources[0]["id"]])
    assert "malicious" in eicar_note["content"]
    # Same pattern, same deterministic id: VirusTotal's opinion is a new version of the feed's
    # indicator where it is risky (EICAR, 203.0.113.66); the harmless domain keeps the feed's.
    latest = {o["id"]: o for o in objs if o["type"] == "indicator"}
    assert latest[sources[0]["id"]]["indicator_types"] == ["malicious-activity"]
    assert latest[sources[2]["id"]]["indicator_types"] == ["malicious-activity"]
    assert latest[sources[1]["id"]]["modified"] == sources[1]["modified"]
    for o in objs:
        assert validate_instance(o, ValidationOptions(version="2.1")).is_valid, o


def test_pull_follows_added_after_and_rejects_invalid_objects(taxii_settings, peer):
    discovery, coll_url = peer
    remote = Collection(coll_url, user=USER, password=PASSWORD)
    remote.add_objects({"objects": [indicator("domain", "one.example.net")]})
    creds = ["--user", USER, "--password", PASSWORD]
    args = ["pull", coll_url, "--collection", "peer", *creds, "--into", "Inbox"]
    r = cli(taxii_settings, *args)
    assert r.exit_code == 0 and "pulled=1 rejected=0" in r.output, r.output
    time.sleep(0.01)
    bad = dict(indicator("domain", "two.example.net"), pattern="[domain-name:value = 'x'")
    # A future-dated object must not make the next pull skip what comes after it.
    future = indicator("domain", "three.example.net", ago=-86400 * 400)
    remote.add_objects({"objects": [bad, future]})
    r = cli(taxii_settings, *args)
    assert r.exit_code == 0 and "pulled=2 rejected=1" in r.output, r.output
    remote.add_objects({"objects": [indicator("domain", "four.example.net")]})
    r = cli(taxii_settings, *args)
    assert r.exit_code == 0 and "pulled=1 rejected=0" in r.output, r.output
    patterns = sorted(o["pattern"] for o in stored(taxii_settings, INBOX))
    assert patterns == [
        "[domain-name:value = 'four.example.net']",
        "[domain-name:value = 'one.example.net']",
        "[domain-name:value = 'three.example.net']",
    ]


def test_cli_errors_are_clear(taxii_settings, peer):
    discovery, _ = peer
    creds = ["--user", USER, "--password", PASSWORD]
    r = cli(taxii_settings, "pull", discovery, "--collection", "nope", *creds, "--into", FEED)
    assert r.exit_code == 2 and "no collection" in r.output
    r = cli(taxii_settings, "pull", discovery, "--collection", "peer", *creds, "--into", "x")
    assert r.exit_code == 2 and "no local collection" in r.output
    r = cli(taxii_settings, "pull", discovery, "--collection", "peer", *creds)
    assert r.exit_code == 2 and "--into is required" in r.output
    r = cli(taxii_settings, "pull", discovery, "--collection", "peer", "--user", USER,
            "--password", "wrong", "--into", FEED)  # fmt: skip
    assert r.exit_code == 1 and "pull failed" in r.output
    r = cli(taxii_settings, "push", "http://127.0.0.1:9/taxii2/", "--collection", "peer",
            "--from", FEED)  # fmt: skip
    assert r.exit_code == 1 and "push failed" in r.output
    r = cli(taxii_settings, "pull", discovery, "--collection", "peer", "--password", "x")
    assert r.exit_code == 2 and "--password needs --user" in r.output


def test_passwd_prints_a_verifiable_hash(taxii_settings):
    from taxii.config import verify_password

    r = cli(taxii_settings, "passwd", "alice", input="s3cret\ns3cret\n")
    assert r.exit_code == 0, r.output
    line = r.output.strip().splitlines()[-1]
    encoded = line.split('password_hash = "')[1].rstrip('" }')
    assert verify_password("s3cret", encoded) and not verify_password("other", encoded)
    assert "s3cret" not in line
    assert cli(taxii_settings, "passwd", 'al"ice', input="a\na\n").exit_code == 2


def test_pull_from_our_own_server_with_a_bearer_token(taxii_settings, server):
    from .conftest import TOKEN
    from .test_server import MEDIA, http

    objs = [indicator("domain", f"t{i}.example.net") for i in range(12)]
    body = json.dumps({"objects": objs}).encode()
    url = f"{server.url}/api/collections/{FEED}/objects/"
    status, _, _ = http(url, "POST", body, {"Content-Type": MEDIA})
    assert status == 202
    r = cli(taxii_settings, "pull", f"{server.url}/api/", "--collection", "VirusTotal malicious",
            "--token", TOKEN, "--into", "Inbox")  # fmt: skip
    assert r.exit_code == 0 and "pulled=12 rejected=0" in r.output, r.output
    r = cli(taxii_settings, "pull", f"{server.url}/api/", "--collection", "VirusTotal malicious",
            "--token", "wrong", "--into", "Inbox")  # fmt: skip
    assert r.exit_code == 1 and "401" in r.output
    assert len([o for o in stored(taxii_settings, INBOX) if o["type"] == "indicator"]) == 12


def test_pull_enriched_with_a_rejected_key_is_exit_3_and_one_line(taxii_settings, server):
    from dataclasses import replace

    from connectors.core.config import for_emulator
    from connectors.emulator.server import EmulatorThread
    from connectors.emulator.state import EmulatorConfig

    from .conftest import TOKEN
    from .test_server import MEDIA, http

    objs = [indicator("domain", f"k{i}.example.net") for i in range(5)]
    body = json.dumps({"objects": objs}).encode()
    url = f"{server.url}/api/collections/{FEED}/objects/"
    status, _, _ = http(url, "POST", body, {"Content-Type": MEDIA})
    assert status == 202
    emu = EmulatorThread(EmulatorConfig(accept_any_key=False, keys={"good": "unlimited"}))
    try:
        url = emu.start()
        settings = for_emulator(taxii_settings, url, str(taxii_settings.state_dir), "wrong")
        settings = replace(settings, raw=taxii_settings.raw)
        r = cli(settings, "pull", f"{server.url}/api/", "--collection", "VirusTotal malicious",
                "--token", TOKEN, "--into", "Inbox", "--enrich")  # fmt: skip
    finally:
        emu.stop()
    assert r.exit_code == 3, r.output
    assert r.output.splitlines() == [
        "error: VirusTotal rejected the API key (WrongCredentialsError): Wrong API key"
    ]


def test_push_never_sends_rows_that_are_not_strict_json(taxii_settings, peer):
    """Rows an older version stored with NaN or a lone surrogate stay home: medallion would
    take them and serve invalid JSON to its own consumers."""
    discovery, _ = peer
    good, nan, lone = (indicator("domain", f"p{i}.example.org") for i in range(3))
    nan["x_score"] = float("nan")
    lone["x_note"] = "a\ud800"
    local = Store(taxii_settings.raw["taxii"]["store"])
    local.add(INBOX, [good, nan, lone])
    local.close()
    creds = ["--user", USER, "--password", PASSWORD]
    r = cli(taxii_settings, "push", discovery, "--collection", "peer", *creds, "--from", "Inbox")
    assert r.exit_code == 0, r.output
    assert "sent=1 succeeded=1 failed=0" in r.output
