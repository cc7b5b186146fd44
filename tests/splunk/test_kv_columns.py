"""Output columns kept in the KV store documents (vtlookup_support/kvstore.py): a search whose
settings match takes them as they are; any other setting, nocache and rescans take the full path;
documents without them still answer and get them."""

from __future__ import annotations

import json
from typing import Dict, List

import pytest

from .conftest import API_KEY, conf_for, interpreter
from .harness import FakeSplunkd
from .test_vtlookup import EICAR_MD5, EICAR_SHA256, api_calls, search

DOMAIN = "kvcols-1.example.com"
VALUES = [EICAR_MD5, DOMAIN, "kvcols-2.example.org", "10.9.8.7", "no way"]
CHUNK = [{"dest": v} for v in VALUES]
ASKED = [f"file:{EICAR_MD5}", f"domain:{DOMAIN}", "domain:kvcols-2.example.org"]  # documents


def records(built_app, sd, home, args=("field=dest",), chunk=CHUNK, **kw) -> List[Dict]:
    _, replies, rc = search(built_app, sd, home, list(args), [chunk], **kw)
    assert rc == 0
    return replies[0].records


def docs(sd) -> Dict[str, Dict]:
    return sd.kv["vtconnect_cache"]


def swap_columns(sd) -> None:
    """EICAR's document shows the domain's columns and has no usable report: only a search
    that takes the columns as they are can answer with them, and without an API call."""
    d = docs(sd)
    d[f"file:{EICAR_MD5}"]["columns"] = d[f"domain:{DOMAIN}"]["columns"]
    d[f"file:{EICAR_MD5}"]["report"] = "{not json"


def test_fast_path_gives_the_full_paths_answers(built_app, splunk_home, emulator_url):
    conf = conf_for(built_app, emulator_url, {"command": {"answers_ttl": "0"}})
    with FakeSplunkd(conf=conf, passwords={"api_key": API_KEY}) as sd:
        records(built_app, sd, splunk_home)  # fills the KV store, columns included
        assert all(isinstance(docs(sd)[k].get("columns"), str) for k in ASKED)
        calls = api_calls(emulator_url)
        fast = records(built_app, sd, splunk_home)
        for d in docs(sd).values():  # documents of an older version: report only
            d.pop("columns", None), d.pop("columns_stamp", None)
        full = records(built_app, sd, splunk_home)
        assert api_calls(emulator_url) == calls
        assert fast == full
        assert {r["vt_cached"] for r in full if r["vt_kind"] and r["vt_verdict"] != "skipped"} == {
            "1"
        }
        # The full path gave the documents it read their columns back.
        assert isinstance(docs(sd)[f"file:{EICAR_MD5}"].get("columns"), str)
        assert records(built_app, sd, splunk_home) == full

        swap_columns(sd)
        got = {r["dest"]: r for r in records(built_app, sd, splunk_home)}
        assert api_calls(emulator_url) == calls  # answered from the columns alone
        assert got[EICAR_MD5]["vt_kind"] == "domain"  # ...which the fast path really used


def test_other_settings_nocache_and_rescans_never_use_old_columns(
    built_app, splunk_home, emulator_url
):
    conf = conf_for(built_app, emulator_url, {"command": {"answers_ttl": "0"}})
    with FakeSplunkd(conf=conf, passwords={"api_key": API_KEY}) as sd:
        records(built_app, sd, splunk_home)
        stamp = docs(sd)[f"file:{EICAR_MD5}"]["columns_stamp"]  # these settings'
        changes = [
            ("policy", "malicious_min", "2"),
            ("privacy", "internal_suffixes", ".local, .kvcols-never"),
            ("lists", "force_harmless", "kvcols-2.example.org"),
        ]
        for section, key, value in changes:
            swap_columns(sd)
            before = sd.conf[section].get(key, "")
            sd.conf[section][key] = value
            got = {r["dest"]: r for r in records(built_app, sd, splunk_home)}
            assert got[EICAR_MD5]["vt_kind"] == "md5", (section, key)
            assert got[EICAR_MD5]["vt_verdict"] == "malicious"
            sd.conf[section][key] = before
        for args in (["field=dest", "nocache=t"], ["field=dest", "rescan_after_days=1"]):
            swap_columns(sd)
            docs(sd)[f"file:{EICAR_MD5}"]["columns_stamp"] = stamp
            got = {r["dest"]: r for r in records(built_app, sd, splunk_home, args)}
            assert got[EICAR_MD5]["vt_kind"] == "md5", args
            assert docs(sd)[f"domain:{DOMAIN}"]["columns_stamp"] == stamp  # saved afresh


def test_an_expired_or_damaged_document_is_a_miss(built_app, splunk_home, emulator_url):
    conf = conf_for(built_app, emulator_url, {"command": {"answers_ttl": "0"}})
    with FakeSplunkd(conf=conf, passwords={"api_key": API_KEY}) as sd:
        first = records(built_app, sd, splunk_home)
        d = docs(sd)
        d[f"domain:{DOMAIN}"]["expires_at"] = 1.0
        d[f"file:{EICAR_MD5}"]["expires_at"] = "soon"
        calls = api_calls(emulator_url)
        again = records(built_app, sd, splunk_home)
        assert api_calls(emulator_url) == calls + 2  # both looked up again
        assert [r["vt_verdict"] for r in again] == [r["vt_verdict"] for r in first]
        assert json.loads(d[f"domain:{DOMAIN}"]["report"])  # saved afresh, columns too
        assert d[f"domain:{DOMAIN}"]["expires_at"] > 1.0 and d[f"domain:{DOMAIN}"]["columns"]


@pytest.mark.parametrize("version", ["3.9", "3.13"])
def test_splunk_interpreters_read_and_write_the_columns(
    built_app, splunk_home, emulator_url, version
):
    python = interpreter(version)
    conf = conf_for(built_app, emulator_url, {"command": {"answers_ttl": "0"}})
    with FakeSplunkd(conf=conf, passwords={"api_key": API_KEY}) as sd:
        first = records(built_app, sd, splunk_home, python=python)
        assert all(isinstance(docs(sd)[k].get("columns"), str) for k in ASKED)
        fast = records(built_app, sd, splunk_home, python=python)
        for d in docs(sd).values():
            d.pop("columns", None), d.pop("columns_stamp", None)
        full = records(built_app, sd, splunk_home, python=python)
        assert fast == full and [r["vt_verdict"] for r in first] == [r["vt_verdict"] for r in full]


def test_an_aliases_columns_are_its_own(built_app, splunk_home, emulator_url):
    """A file asked by its MD5 and later by its SHA-256: one report, but vt_kind differs."""
    conf = conf_for(built_app, emulator_url, {"command": {"answers_ttl": "0"}})
    by_sha = [{"dest": EICAR_SHA256}]
    with FakeSplunkd(conf=conf, passwords={"api_key": API_KEY}) as sd:
        records(built_app, sd, splunk_home)  # by MD5: the SHA-256 document is saved too
        calls = api_calls(emulator_url)
        (fast,) = records(built_app, sd, splunk_home, chunk=by_sha)
        for d in docs(sd).values():
            d.pop("columns", None), d.pop("columns_stamp", None)
        (full,) = records(built_app, sd, splunk_home, chunk=by_sha)
        assert api_calls(emulator_url) == calls
        assert fast == full and full["vt_kind"] == "sha256"
        (again,) = records(built_app, sd, splunk_home, chunk=by_sha)  # columns written back
        assert again == full
