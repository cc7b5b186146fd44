"""| vtlookup end to end: the built app's bin/vtlookup.py as a subprocess speaking protocol v2 to
our harness, a loopback fake of splunkd's REST API, and the VirusTotal emulator."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Dict, List

import pytest

from connectors.emulator.server import EmulatorThread

from . import harness
from .conftest import API_KEY, BuiltApp, base_python, conf_for, interpreter
from .harness import FakeSplunkd, Record, run_search

EICAR_MD5 = "44d88612fea8a8f36de82e1278abb02f"
EICAR_SHA256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
FIELDS = [
    "kind", "id", "verdict", "score", "reason", "malicious", "suspicious", "harmless",
    "undetected", "total", "reputation", "threat_label", "tags", "first_seen", "last_analysis",
    "link", "cached", "error", "file_names", "file_type", "file_size", "md5", "sha1", "sha256",
    "categories", "registrar", "creation_date", "country", "asn", "as_owner", "network",
    "final_url", "title", "redirection_chain",
    # evidence (connectors/core/evidence.py)
    "detections", "votes_malicious", "votes_harmless", "threat_categories", "threat_names",
    "threat_severity", "threat_severity_description", "gti_verdict", "gti_score", "yara_rules",
    "sigma_counts", "sigma_rules", "ids_counts", "ids_rules", "sandbox_verdicts",
    "sandbox_malware", "known_distributors", "signer", "signature_verified", "relationships",
    "last_modified",
]  # fmt: skip


def search(app: BuiltApp, sd: FakeSplunkd, home: Path, args: List[str], chunks, **kw):
    return run_search(
        app.app_dir, sd, args, chunks, python=kw.pop("python", base_python()),
        env=harness.command_env(home), **kw,
    )  # fmt: skip


def api_calls(url: str) -> int:
    with urllib.request.urlopen(url.rstrip("/") + "/_emulator/counters", timeout=5) as resp:
        doc = json.load(resp)
    return (
        sum(v for k, v in doc.items() if isinstance(v, int) and k != "total")
        if not isinstance(doc.get("total"), int)
        else doc["total"]
    )


def by_value(records: List[Record], field: str = "dest") -> Dict[str, Record]:
    return {str(r[field]): r for r in records}


# -- getinfo ---------------------------------------------------------------------------------
def test_getinfo_reply_is_exact(built_app, splunkd, splunk_home):
    info, replies, rc = search(built_app, splunkd, splunk_home, ["field=dest"], [[{"dest": ""}]])
    # distributed=False: "stateful", runs on the search head where the key is
    assert info.header + json.dumps(info.metadata, separators=(",", ":")).encode() == (
        b'chunked 1.0,19,0\n{"type":"stateful"}'
    )
    assert rc == 0
    # An empty field: every output field present and empty, the record otherwise unchanged.
    assert replies[0].metadata == {"finished": True}
    assert replies[0].header.startswith(b"chunked 1.0,17,")
    head = replies[0].body.split(b"\r\n", 1)[0].decode()
    expected = ["dest"] + [f"vt_{f}" for f in FIELDS]
    assert head == ",".join(c for n in expected for c in (n, "__mv_" + n))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["type=bogus"], "vtlookup: type=bogus is not one of auto"),
        (["prefix=bad-prefix"], "vtlookup: prefix='bad-prefix' must be letters, digits or '_'"),
        (["max_lookups=-1"], "Illegal value: max_lookups=-1"),
        (["extract=maybe"], "Illegal value: extract=maybe"),
        (["colour=blue"], "Unrecognized option: colour=blue"),
        ([], 'A value for "field" is required'),
    ],
)
def test_bad_option_fails_at_getinfo(built_app, splunkd, splunk_home, args, message):
    full = args if args == [] else ["field=dest", *args]
    info, replies, rc = search(built_app, splunkd, splunk_home, full, [[{"dest": "example.com"}]])
    assert rc == 1 and replies == []
    errors = [text for level, text in info.messages if level == "ERROR"]
    assert len(errors) == 1 and errors[0].startswith(message), errors
    assert splunkd.count("batch_find") == 0  # nothing looked up


def test_missing_api_key_says_where_to_set_it(built_app, splunk_home, emulator_url):
    with FakeSplunkd(conf=conf_for(built_app, emulator_url), passwords={}) as sd:
        info, replies, rc = search(built_app, sd, splunk_home, ["field=dest"], [[{"dest": "x"}]])
    assert rc == 1 and replies == []
    assert "no VirusTotal API key" in info.messages[0][1]
    assert "setup page" in info.messages[0][1]


def test_bad_conf_value_is_named(built_app, splunk_home, emulator_url):
    conf = conf_for(built_app, emulator_url, {"policy": {"malicious_min": "lots"}})
    with FakeSplunkd(conf=conf, passwords={"api_key": API_KEY}) as sd:
        info, _, rc = search(built_app, sd, splunk_home, ["field=dest"], [[{"dest": "x"}]])
    assert rc == 1
    assert "[policy] malicious_min must be a number" in info.messages[0][1]


# -- enrichment ------------------------------------------------------------------------------
def test_each_kind(built_app, splunkd, splunk_home):
    values = [
        EICAR_MD5, EMPTY_SHA256, "hxxps://example[.]com/login", "example.org", "203.0.113.66",
        "10.1.2.3", "fileserver.corp", "not an indicator",
    ]  # fmt: skip
    records = [{"_time": str(1700000000 + i), "dest": v} for i, v in enumerate(values)]
    _, replies, rc = search(built_app, splunkd, splunk_home, ["field=dest"], [records])
    assert rc == 0
    out = by_value(replies[0].records)
    assert len(replies[0].records) == len(values)
    for r in replies[0].records:
        assert all(f"vt_{f}" in r for f in FIELDS), r  # every field on every record
    eicar = out[EICAR_MD5]
    assert (eicar["vt_kind"], eicar["vt_verdict"], eicar["vt_id"]) == (
        "md5",
        "malicious",
        EICAR_SHA256,
    )
    assert int(eicar["vt_malicious"]) >= 3 and eicar["vt_link"].endswith(EICAR_SHA256)
    assert eicar["vt_sha256"] == EICAR_SHA256 and eicar["vt_error"] == ""
    assert out[EMPTY_SHA256]["vt_verdict"] == "harmless"
    url = out["hxxps://example[.]com/login"]
    assert url["vt_kind"] == "url" and url["vt_verdict"] in ("harmless", "undetected", "not_found")
    assert out["example.org"]["vt_kind"] == "domain"
    assert out["example.org"]["vt_verdict"] == "harmless"
    ip = out["203.0.113.66"]
    assert (ip["vt_kind"], ip["vt_verdict"]) == ("ipv4", "malicious")
    assert out["10.1.2.3"]["vt_verdict"] == "skipped"
    assert out["fileserver.corp"]["vt_verdict"] == "skipped"
    assert out["not an indicator"]["vt_verdict"] == "skipped"
    assert out["not an indicator"]["vt_kind"] == ""
    assert [r["_time"] for r in replies[0].records] == [str(1700000000 + i) for i in range(8)]
    assert replies[0].messages == []  # nothing went wrong: no warning
    summary = (splunk_home / "var" / "log" / "splunk" / "vtlookup.log").read_text()
    assert "event=summary" in summary and "records=8" in summary
    assert "event=risky" in summary and EICAR_MD5 in summary


def test_multivalue_in_same_order(built_app, splunkd, splunk_home):
    records = [
        {"id": "1", "dest": [EICAR_MD5, "example.com", "10.0.0.1"]},
        {"id": "2", "dest": "example.com"},
    ]
    _, replies, _ = search(built_app, splunkd, splunk_home, ["field=dest"], [records])
    first, second = replies[0].records
    assert first["vt_verdict"] == ["malicious", "harmless", "skipped"]
    assert first["vt_kind"] == ["md5", "domain", "ipv4"]
    assert len(first["vt_link"]) == 3 and first["dest"] == [EICAR_MD5, "example.com", "10.0.0.1"]
    assert second["vt_verdict"] == "harmless"
    # the multivalue twin column carries the "$a$;$b$" encoding
    assert b"$malicious$;$harmless$;$skipped$" in replies[0].body


def test_extract_from_raw_text(built_app, splunkd, splunk_home):
    raw = (
        f"2024-05-01 blocked download of {EICAR_MD5} from hxxp://example[.]net/a.exe "
        "reported by 10.1.1.1 — see example.org\r\nsecond line ünïcödé"
    )
    records = [{"_raw": raw}, {"_raw": "nothing here"}]
    _, replies, _ = search(built_app, splunkd, splunk_home, ["field=_raw", "extract=t"], [records])
    first, second = replies[0].records
    assert first["_raw"] == raw  # passed through byte for byte (CRLF and Unicode inside)
    kinds = first["vt_kind"]
    assert isinstance(kinds, list) and "md5" in kinds and "url" in kinds and "domain" in kinds
    verdicts = dict(zip(kinds, first["vt_verdict"]))
    assert verdicts["md5"] == "malicious"
    assert second["vt_verdict"] == "" and second["vt_kind"] == ""


def test_cache_hits_across_chunks_and_searches(built_app, splunk_home, emulator_url):
    values = [f"cache-test-{i}.example.com" for i in range(5)] + [EICAR_MD5]
    chunk = [{"dest": v} for v in values]
    # Kept answers off: every search goes through the KV store (the next test covers them).
    conf = conf_for(built_app, emulator_url, {"command": {"answers_ttl": "0"}})
    with FakeSplunkd(conf=conf, passwords={"api_key": API_KEY}) as splunkd:
        before = api_calls(emulator_url)
        _, replies, rc = search(built_app, splunkd, splunk_home, ["field=dest"], [chunk, chunk])
        assert rc == 0
        first_calls = api_calls(emulator_url) - before
        assert 1 <= first_calls <= len(values)  # unique values only, once per search
        assert {r["vt_cached"] for r in replies[1].records} == {"1"}  # second chunk: no API call
        docs = splunkd.kv["vtconnect_cache"]
        assert f"file:{EICAR_SHA256}" in docs and f"file:{EICAR_MD5}" in docs  # aliases share
        assert docs[f"file:{EICAR_MD5}"]["verdict"] == "malicious"
        # A new search (a new process): answered from the KV store, no API call.
        mid, finds = api_calls(emulator_url), splunkd.count("batch_find")
        _, replies2, _ = search(built_app, splunkd, splunk_home, ["field=dest"], [chunk])
        assert api_calls(emulator_url) == mid and splunkd.count("batch_find") > finds
        assert {r["vt_cached"] for r in replies2[0].records} == {"1"}
        assert by_value(replies2[0].records)[EICAR_MD5]["vt_verdict"] == "malicious"
        # nocache=t goes to VirusTotal again.
        search(built_app, splunkd, splunk_home, ["field=dest", "nocache=t"], [chunk])
        assert api_calls(emulator_url) > mid


def test_answers_kept_between_searches(built_app, splunk_home, emulator_url):
    values = [f"kept-{i}.example.com" for i in range(4)] + [EICAR_MD5, "10.9.8.7", "no way"]
    chunk = [{"dest": v} for v in values]
    conf = conf_for(built_app, emulator_url)
    with FakeSplunkd(conf=conf, passwords={"api_key": API_KEY}) as splunkd:
        _, first, rc = search(built_app, splunkd, splunk_home, ["field=dest"], [chunk])
        assert rc == 0
        # The shared KV store is emptied: only this search head's kept answers remain.
        splunkd.kv.clear()
        calls, finds = api_calls(emulator_url), splunkd.count("batch_find")
        _, second, _ = search(built_app, splunkd, splunk_home, ["field=dest"], [chunk])
        assert api_calls(emulator_url) == calls and splunkd.count("batch_find") == finds
        for a, b in zip(first[0].records, second[0].records):
            assert {**a, "vt_cached": ""} == {**b, "vt_cached": ""}  # the same answer...
            assert b["vt_cached"] == ("1" if a["vt_kind"] and a["vt_verdict"] != "skipped" else "0")
        log = (splunk_home / "var" / "log" / "splunk" / "vtlookup.log").read_text()
        assert " cache_hits=5 " in log.splitlines()[-1]  # 4 domains + EICAR, not the skipped
        # Another verdict policy gives other answers: nothing kept under the old one is used.
        splunkd.conf["policy"]["malicious_min"] = "2"
        _, third, _ = search(built_app, splunkd, splunk_home, ["field=dest"], [chunk])
        assert api_calls(emulator_url) > calls  # KV store empty, kept answers not matching
        assert by_value(third[0].records)[EICAR_MD5]["vt_cached"] == "0"
        # nocache=t never reads kept answers either.
        calls = api_calls(emulator_url)
        search(built_app, splunkd, splunk_home, ["field=dest", "nocache=t"], [chunk])
        assert api_calls(emulator_url) > calls


def test_quota_answers_are_not_kept(built_app, splunkd, splunk_home, emulator_url):
    chunk = [{"dest": f"notkept-{i}.example.com"} for i in range(3)]
    _, replies, _ = search(
        built_app, splunkd, splunk_home, ["field=dest", "max_lookups=0"], [chunk]
    )
    assert {r["vt_verdict"] for r in replies[0].records} == {"quota"}
    _, replies, _ = search(built_app, splunkd, splunk_home, ["field=dest"], [chunk])
    assert "quota" not in {r["vt_verdict"] for r in replies[0].records}


def test_kvstore_down_falls_back_to_local_cache(built_app, splunkd, splunk_home):
    splunkd.kv_down = True
    chunk = [{"dest": EICAR_MD5}, {"dest": "example.com"}]
    _, replies, rc = search(built_app, splunkd, splunk_home, ["field=dest"], [chunk, chunk])
    assert rc == 0
    assert [r["vt_verdict"] for r in replies[1].records] == ["malicious", "harmless"]
    assert splunkd.kv == {} or splunkd.kv.get("vtconnect_cache") == {}
    assert replies[0].messages == []  # the cache moved; the user's results did not change
    log = (splunk_home / "var" / "log" / "splunk" / "vtlookup.log").read_text()
    assert "cache=sqlite" in log


def test_max_lookups_gives_quota_and_one_warning(built_app, splunkd, splunk_home):
    chunk1 = [{"dest": f"budget-{i}.example.com"} for i in range(4)]
    chunk2 = [{"dest": f"budget-{i}.example.net"} for i in range(4)]
    _, replies, rc = search(
        built_app, splunkd, splunk_home, ["field=dest", "max_lookups=2"], [chunk1, chunk2]
    )
    assert rc == 0 and len(replies) == 2
    verdicts = [r["vt_verdict"] for rep in replies for r in rep.records]
    assert verdicts.count("quota") == 6
    warnings = [m for rep in replies for m in rep.messages]
    assert len(warnings) == 1 and warnings[0][0] == "WARN" and "quota" in warnings[0][1]


def test_daily_quota_spent(built_app, splunk_home, emulator_url):
    conf = conf_for(built_app, emulator_url, {"quota": {"tier": "premium", "per_day": "1"}})
    chunk = [{"dest": f"daily-{i}.example.org"} for i in range(3)]
    with FakeSplunkd(conf=conf, passwords={"api_key": API_KEY}) as sd:
        _, replies, rc = search(built_app, sd, splunk_home, ["field=dest", "deadline=5"], [chunk])
    assert rc == 0
    verdicts = sorted(r["vt_verdict"] for r in replies[0].records)
    assert verdicts.count("quota") == 2
    assert len(replies[0].messages) == 1


def test_virustotal_down_gives_error_and_search_completes(built_app, splunk_home):
    emu = EmulatorThread(fault_config())
    url = emu.start()
    try:
        conf = conf_for(built_app, url, {"virustotal": {"retries": "0", "timeout": "2"}})
        with FakeSplunkd(conf=conf, passwords={"api_key": API_KEY}) as sd:
            chunk = [{"dest": f"down-{i}.example.com"} for i in range(3)]
            _, replies, rc = search(built_app, sd, splunk_home, ["field=dest"], [chunk, chunk])
    finally:
        emu.stop()
    assert rc == 0 and len(replies) == 2
    assert {r["vt_verdict"] for rep in replies for r in rep.records} == {"error"}
    assert all(r["vt_error"] for r in replies[0].records)
    warnings = [m for rep in replies for m in rep.messages]
    assert len(warnings) == 1 and "failed" in warnings[0][1]


def fault_config():
    from connectors.emulator.app import EmulatorConfig

    return EmulatorConfig(faults={"error_rates": {"TransientError": 1.0}})


def test_non_utf8_bytes_and_awkward_csv(built_app, splunkd, splunk_home):
    body = (
        b"dest,__mv_dest,note,__mv_note\r\n"
        b'example.com,,"line one\r\nline \xe2\x80\x9ctwo\xe2\x80\x9d, with ""quotes""",\r\n'
        b"bad\xff\xfe.example.com,,plain,\r\n"
        b'"",,"",\r\n'
    )
    with harness_process(built_app, splunk_home) as cmd:
        info = cmd.getinfo(harness.searchinfo(["field=dest"], splunkd.uri, str(splunk_home)))
        assert info.metadata == {"type": "stateful"}
        header_only = cmd.execute_raw(b"dest,__mv_dest\r\n")
        reply = cmd.execute_raw(body, finished=True)
    recs = reply.records
    assert len(recs) == 3
    assert header_only.body == b"" and header_only.metadata.get("finished") is not True
    assert recs[0]["note"] == 'line one\r\nline \u201ctwo\u201d, with "quotes"'
    assert recs[0]["vt_verdict"] == "harmless"
    assert recs[1]["vt_verdict"] == "skipped"  # undecodable bytes: skipped, not a crash
    assert recs[2]["vt_verdict"] == ""


class harness_process:
    def __init__(self, app: BuiltApp, home: Path, python: str = "") -> None:
        self.cmd = harness.CommandProcess(
            app.app_dir, python or base_python(), env=harness.command_env(home)
        )

    def __enter__(self) -> harness.CommandProcess:
        return self.cmd

    def __exit__(self, *exc: object) -> None:
        assert self.cmd.close() == 0, self.cmd.stderr()[-3000:]


def test_fifty_thousand_record_chunk(built_app, splunkd, splunk_home):
    distinct = [f"big-{i}.example.com" for i in range(200)] + [EICAR_MD5]
    chunk = [{"_time": str(i), "dest": distinct[i % len(distinct)]} for i in range(50_000)]
    _, replies, rc = search(built_app, splunkd, splunk_home, ["field=dest"], [chunk])
    assert rc == 0 and len(replies) == 1
    recs = replies[0].records
    assert len(recs) == 50_000
    assert [r["_time"] for r in recs[:3]] == ["0", "1", "2"]
    eicar = [r for r in recs if r["dest"] == EICAR_MD5]
    assert len(eicar) == len(range(len(distinct) - 1, 50_000, len(distinct)))
    assert {r["vt_verdict"] for r in eicar} == {"malicious"}
    # Every record of one value carries the same answer, and every record has one.
    by_value = {}
    for r in recs:
        by_value.setdefault(r["dest"], set()).add(r["vt_verdict"])
    assert all(len(v) == 1 and "" not in v for v in by_value.values())


@pytest.mark.parametrize("version", ["3.9", "3.13"])
def test_nul_bytes_in_events_pass_through(built_app, splunkd, splunk_home, version):
    body = (
        b"dest,__mv_dest,_raw,__mv__raw\r\n"
        + EICAR_MD5.encode() + b",,bin\x00ary,\r\n"
        + b"exa\x00mple.com,,x,\r\n"
    )  # fmt: skip
    with harness_process(built_app, splunk_home, python=interpreter(version)) as cmd:
        cmd.getinfo(harness.searchinfo(["field=dest"], splunkd.uri, str(splunk_home)))
        reply = cmd.execute_raw(body, finished=True)
    recs = reply.records
    assert [r["vt_verdict"] for r in recs] == ["malicious", "skipped"]
    assert recs[0]["_raw"] == "bin\x00ary" and recs[1]["dest"] == "exa\x00mple.com"


def test_huge_event_passes_through(built_app, splunkd, splunk_home):
    # Extraction reads the first 64 KB of a field; the rest still passes through unchanged.
    raw = "callback to hxxp://malware.wicar[.]org/data/eicar.com " + "x" * 300_000
    _, replies, rc = search(
        built_app, splunkd, splunk_home, ["field=_raw", "extract=t"], [[{"_raw": raw}]]
    )
    assert rc == 0
    (rec,) = replies[0].records
    assert rec["_raw"] == raw and rec["vt_kind"] == "url"


@pytest.mark.parametrize("version", ["3.9", "3.13"])
def test_splunk_interpreters(built_app, splunkd, splunk_home, version):
    python = interpreter(version)
    records = [{"dest": [EICAR_MD5, "example.com"]}, {"dest": "203.0.113.66"}]
    _, replies, rc = search(
        built_app, splunkd, splunk_home, ["field=dest", "prefix=virustotal_"], [records, records],
        python=python,
    )  # fmt: skip
    assert rc == 0
    first = replies[0].records[0]
    assert first["virustotal_verdict"] == ["malicious", "harmless"]
    assert replies[1].records[1]["virustotal_verdict"] == "malicious"
    assert replies[1].records[1]["virustotal_cached"] == "1"


def test_damaged_answers_file_is_moved_aside(built_app, splunkd, splunk_home):
    state = splunk_home / "var" / "lib" / "splunk" / "vtconnect"
    state.mkdir(parents=True)
    (state / "vtlookup_answers.sqlite").write_bytes(b"not a database" * 100)
    chunk = [{"dest": EICAR_MD5}, {"dest": "example.com"}]
    for _ in range(2):  # the second search reads the rebuilt file
        _, replies, rc = search(built_app, splunkd, splunk_home, ["field=dest"], [chunk])
        assert rc == 0 and replies[0].messages == []
        assert [r["vt_verdict"] for r in replies[0].records] == ["malicious", "harmless"]
    assert [p.name.startswith("vtlookup_answers.sqlite.corrupt-") for p in state.iterdir()].count(
        True
    ) == 1
