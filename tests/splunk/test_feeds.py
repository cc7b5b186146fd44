"""The modular input vtconnect_feed://: run as splunkd runs it (the built app's script, the
input definition XML on stdin, events as XML on stdout) against the emulator's IoC Stream and
Livehunt feeds, checkpointed in the (fake) KV store, through the quota governor."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Tuple
from xml.sax.saxutils import escape

import pytest

from . import harness
from .conftest import API_KEY, base_python, conf_for
from .harness import SYSTEM_KEY, FakeSplunkd


@pytest.fixture
def feed_splunkd(built_app, emulator_url):
    with FakeSplunkd(
        conf=conf_for(built_app, emulator_url), passwords={"api_key": API_KEY},
        app_dir=built_app.app_dir, python=base_python(),
    ) as sd:  # fmt: skip
        yield sd


def run_input(app_dir: Path, sd: FakeSplunkd, home: Path, stanzas: Dict[str, Dict[str, str]],
              args: Tuple[str, ...] = ()) -> Tuple[int, List[ET.Element], str]:  # fmt: skip
    conf = "".join(
        f'<stanza name="{escape(name)}" app="vtconnect">'
        + "".join(f'<param name="{k}">{escape(v)}</param>' for k, v in params.items())
        + "</stanza>"
        for name, params in stanzas.items()
    )
    xml = (
        f"<input><server_host>fake</server_host><server_uri>{sd.uri}</server_uri>"
        f"<session_key>{SYSTEM_KEY}</session_key><checkpoint_dir>{home}</checkpoint_dir>"
        f"<configuration>{conf}</configuration></input>"
    )
    proc = subprocess.run(
        [base_python(), str(app_dir / "bin" / "vtconnect_feeds.py"), *args],
        input=xml.encode(), capture_output=True, timeout=120,
        cwd=str(app_dir / "bin"), env=harness.command_env(home),
    )  # fmt: skip
    out = proc.stdout.decode()
    events = list(ET.fromstring(out).iter("event")) if out.strip().startswith("<stream") else []
    return proc.returncode, events, proc.stderr.decode()


def test_ioc_stream_indexed_once_and_resumed_from_the_kv_checkpoint(
    built_app, feed_splunkd, splunk_home
):
    stanza = {"vtconnect_feed://ioc": {"feed": "ioc_stream", "max_pages": "10"}}
    rc, events, err = run_input(built_app.app_dir, feed_splunkd, splunk_home, stanza)
    assert rc == 0, err
    assert len(events) == 60  # the emulator's whole stream, two pages of 40
    docs = [json.loads(e.findtext("data")) for e in events]
    assert {e.findtext("sourcetype") for e in events} == {"vtconnect:ioc_stream"}
    assert {d["feed"] for d in docs} == {"ioc_stream"}
    times = [float(e.findtext("time")) for e in events]
    assert times == sorted(times)  # oldest first, _time = notification date
    ids = [d["notification"]["notification_id"] for d in docs]
    assert len(set(ids)) == 60
    assert all(d["vt_verdict"] in ("malicious", "suspicious", "harmless", "undetected")
               for d in docs if "vt_verdict" in d)  # fmt: skip
    assert any("vt_verdict" in d for d in docs)
    cp = feed_splunkd.kv["vtconnect_checkpoints"]["vtconnect_feed_ioc"]
    assert cp["date"] == max(times)
    # The next run finds nothing new: one API call (the first page), no event twice.
    rc, events, err = run_input(built_app.app_dir, feed_splunkd, splunk_home, stanza)
    assert rc == 0 and events == [], err
    # An older checkpoint (the 5th newest indexed): only the 4 after it are indexed.
    feed_splunkd.kv["vtconnect_checkpoints"]["vtconnect_feed_ioc"] = {
        "_key": "vtconnect_feed_ioc", "date": times[-5], "ids": [ids[-5]],
    }  # fmt: skip
    rc, events, err = run_input(built_app.app_dir, feed_splunkd, splunk_home, stanza)
    assert rc == 0, err
    assert len(events) == 4


def test_livehunt_and_the_page_budget(built_app, feed_splunkd, splunk_home):
    stanza = {"vtconnect_feed://lh": {"feed": "livehunt", "max_pages": "1"}}
    rc, events, err = run_input(built_app.app_dir, feed_splunkd, splunk_home, stanza)
    assert rc == 0, err
    assert len(events) == 40  # one page: the budget
    doc = json.loads(events[-1].findtext("data"))
    assert doc["notification"]["rule_name"] and doc["type"] == "file"
    assert {e.findtext("sourcetype") for e in events} == {"vtconnect:livehunt"}


def test_background_priority_leaves_the_budget_to_searches(built_app, splunk_home, emulator_url):
    conf = conf_for(built_app, emulator_url, {"quota": {"tier": "premium", "per_day": "10"}})
    with FakeSplunkd(
        conf=conf, passwords={"api_key": API_KEY}, app_dir=built_app.app_dir,
        python=base_python(),
    ) as sd:  # fmt: skip
        # Searches spend 6 of the day's 10 calls: background work may use at most 60 %.
        chunk = [{"dest": f"budget-feed-{i}.example.com"} for i in range(6)]
        _, replies, rc = harness.run_search(
            built_app.app_dir, sd, ["field=dest"], [chunk], python=base_python(),
            env=harness.command_env(splunk_home),
        )  # fmt: skip
        assert rc == 0 and "quota" not in {r["vt_verdict"] for r in replies[0].records}
        stanza = {"vtconnect_feed://ioc": {"feed": "ioc_stream"}}
        rc, events, err = run_input(built_app.app_dir, sd, splunk_home, stanza)
        assert rc == 0 and events == [] and "stopped: quota" in err, err
        # ... and searches still have theirs.
        _, replies, _ = harness.run_search(
            built_app.app_dir, sd, ["field=dest"], [[{"dest": "after-feed.example.com"}]],
            python=base_python(), env=harness.command_env(splunk_home),
        )  # fmt: skip
        assert replies[0].records[0]["vt_verdict"] != "quota"


def test_bad_parameters_are_refused(built_app, feed_splunkd, splunk_home):
    stanza = {"vtconnect_feed://x": {"feed": "firehose"}}
    rc, events, err = run_input(built_app.app_dir, feed_splunkd, splunk_home, stanza)
    assert events == [] and "feed must be one of ioc_stream, livehunt" in err


def test_scheme(built_app, feed_splunkd, splunk_home):
    rc, _, _ = run_input(built_app.app_dir, feed_splunkd, splunk_home, {})
    proc = subprocess.run(
        [base_python(), str(built_app.app_dir / "bin" / "vtconnect_feeds.py"), "--scheme"],
        capture_output=True, timeout=60, cwd=str(built_app.app_dir / "bin"),
    )  # fmt: skip
    scheme = ET.fromstring(proc.stdout)
    assert scheme.findtext("title") == "VirusTotal feed"
    names = [a.get("name") for a in scheme.iter("arg")]
    assert names == ["feed", "filter", "max_pages"]
