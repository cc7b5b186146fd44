"""`vtconnect taxii push` and `pull` against medallion 3.0.0, the OASIS reference server."""

from __future__ import annotations

import json
import os
import time

from click.testing import CliRunner
from stix2validator import ValidationOptions, validate_instance

from connectors.cli import main
from connectors.core import stix
from connectors.core.verdict import Enrichment, Verdict
from taxii.client import observables
from taxii.store import Store

from .conftest import FEED, INBOX, taxii_doc
from .medallion_peer import PASSWORD, USER, medallion


def indicator(kind, value):
    enr = Enrichment(
        value=value,
        kind=kind,
        verdict=Verdict.SUSPICIOUS,
        score=50,
        reason="feed",
        normalized=value,
        vt_id=value,
        link="https://example.org/intel",
    )
    return stix.indicator(enr, time.time() - 60)


def test_pattern_observables():
    assert observables(
        {
            "type": "indicator",
            "pattern": "[file:hashes.'SHA-256' = 'ab' OR url:value = 'http://x.com/it\\'s']",
        }
    ) == [("file", "ab"), ("url", "http://x.com/it's")]
    assert observables({"type": "indicator", "pattern": "[broken"}) == []
    assert observables({"type": "indicator", "pattern": "[x-custom:value = 'a']"}) == []
    assert observables({"type": "malware"}) == []


def test_push_then_pull_with_enrichment(tmp_path, emulator_url):
    doc = taxii_doc(tmp_path)
    cfg = tmp_path / "vtconnect.toml"
    lines = [
        "[quota]",
        'tier = "unlimited"',
        "[privacy]",
        "allow_documentation_ranges = true",
        "[taxii]",
        f'store = "{doc["taxii"]["store"]}"',
    ]
    for c in doc["taxii"]["collections"]:
        lines += ["[[taxii.collections]]", f'id = "{c["id"]}"', f'title = "{c["title"]}"']
    cfg.write_text("\n".join(lines) + "\n")
    env = {
        "VTCONNECT_CONFIG": str(cfg),
        "VT_API_URL": emulator_url,
        "VT_API_KEY": "k",
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    local = Store(doc["taxii"]["store"])
    sources = [
        indicator("md5", "44d88612fea8a8f36de82e1278abb02f"),
        indicator("domain", "example.com"),
        indicator("ipv4", "203.0.113.66"),
    ]
    local.add(INBOX, sources)
    local.close()
    peer_dir = tmp_path / "peer"
    peer_dir.mkdir()
    with medallion(peer_dir) as (discovery, _):
        r = CliRunner().invoke(
            main,
            [
                "taxii",
                "push",
                discovery,
                "--collection",
                "peer",
                "--user",
                USER,
                "--password",
                PASSWORD,
                "--from",
                INBOX,
            ],
            env=env,
            catch_exceptions=False,
        )
        assert r.exit_code == 0, r.output
        assert "sent=3 succeeded=3 failed=0" in r.output
        args = [
            "taxii",
            "pull",
            discovery,
            "--collection",
            "peer",
            "--user",
            USER,
            "--password",
            PASSWORD,
            "--enrich",
            "--into",
            FEED,
        ]
        r = CliRunner().invoke(main, args, env=env, catch_exceptions=False)
        assert r.exit_code == 0, r.output
        assert "pulled=3 enriched=3" in r.output
        again = CliRunner().invoke(main, args, env=env, catch_exceptions=False)
        assert again.exit_code == 0
        r = CliRunner().invoke(
            main,
            [
                "taxii",
                "pull",
                discovery,
                "--collection",
                "nope",
                "--user",
                USER,
                "--password",
                PASSWORD,
                "--into",
                FEED,
            ],
            env=env,
        )
        assert r.exit_code == 2 and "no collection" in r.output
    store = Store(doc["taxii"]["store"])
    page = store.query(FEED, limit=1000)
    objs = [json.loads(o["body"]) for o in page.objects]
    store.close()
    notes = [o for o in objs if o["type"] == "note"]
    assert len(notes) == 3  # one per source indicator
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
    assert os.path.exists(doc["taxii"]["store"])
