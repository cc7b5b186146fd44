"""A search head cluster member never puts an older report back into the shared KV store cache
(vtlookup_support/kvstore.py): between one member's read and its write another member may save
a newer report for the key; the write then leaves the newer document as it is. Against the fake
splunkd over HTTP, through splunklib, as the command talks to splunkd."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Dict

import pytest

from connectors.core.clock import Clock
from connectors.core.config import CacheSettings
from connectors.core.store import Cache, CacheEntry

from .harness import SESSION_KEY, FakeSplunkd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "splunk_app" / "bin"))
from vtlookup_support.kvstore import COLLECTION, KVStoreCache  # noqa: E402

KEY = "domain:versions.example.com"
NOW = time.time()


def doc(verdict: str, last_analysis: int, stored_at: float, **extra: Any) -> Dict[str, Any]:
    report = {"kind": "domain", "id": "versions.example.com", "last_analysis": last_analysis}
    return {
        "_key": KEY, "kind": "domain", "value": "versions.example.com", "verdict": verdict,
        "report": json.dumps(report), "report_date": last_analysis, "stored_at": stored_at,
        "expires_at": NOW + 3600, **extra,
    }  # fmt: skip


@pytest.fixture
def member(tmp_path):
    """One cluster member's KV store cache, and the fake splunkd's collection."""
    from splunklib import client

    with FakeSplunkd(conf={}) as sd:
        port = int(sd.uri.rsplit(":", 1)[1])
        service = client.Service(
            scheme="http", host="127.0.0.1", port=port, token="Splunk " + SESSION_KEY,
            owner="nobody", app="vtconnect",
        )  # fmt: skip
        clock = Clock()
        kv = KVStoreCache(
            service, "vtconnect", Cache(tmp_path / "c.db", CacheSettings(), clock), clock
        )
        kv.stamp = "stamp-1"
        yield kv, sd.kv.setdefault(COLLECTION, {})
        kv.close()


def read(kv: KVStoreCache) -> CacheEntry:
    """A batch's read: answers() finds no columns for these settings, get_many reads it whole."""
    assert kv.answers([KEY]) == {}
    return kv.get_many([KEY])[KEY]


def test_columns_go_onto_the_version_they_were_rendered_from(member):
    kv, coll = member
    coll[KEY] = doc("harmless", 1_000, NOW - 100)
    read(kv)
    kv.attach({KEY: "columns-from-old"})
    assert coll[KEY]["columns"] == "columns-from-old" and coll[KEY]["columns_stamp"] == "stamp-1"
    assert coll[KEY]["verdict"] == "harmless"


def test_a_newer_report_saved_meanwhile_is_not_overwritten(member):
    kv, coll = member
    coll[KEY] = doc("harmless", 1_000, NOW - 100)
    assert read(kv).verdict == "harmless"
    # Another member refreshes the key (a newer analysis) while this one works on its batch.
    newer = doc("malicious", 2_000, NOW - 50, columns="theirs", columns_stamp="stamp-1")
    coll[KEY] = dict(newer)
    kv.attach({KEY: "columns-from-old"})
    assert coll[KEY] == newer  # the older report and its columns did not come back


def test_a_later_stored_copy_of_the_same_analysis_is_kept_too(member):
    kv, coll = member
    coll[KEY] = doc("harmless", 1_000, NOW - 100)
    read(kv)
    again = doc("harmless", 1_000, NOW - 10)  # the same analysis, saved again later
    coll[KEY] = dict(again)
    kv.attach({KEY: "columns-from-old"})
    assert coll[KEY] == again


def test_a_key_removed_meanwhile_is_not_brought_back(member):
    kv, coll = member
    coll[KEY] = doc("harmless", 1_000, NOW - 100)
    read(kv)
    del coll[KEY]
    kv.attach({KEY: "columns-from-old"})
    assert KEY not in coll


def test_a_new_entry_never_replaces_a_newer_analysis(member):
    kv, coll = member
    newer = doc("malicious", 2_000, NOW - 500)
    coll[KEY] = dict(newer)
    # This member looked the value up and got an older analysis (say from a lagging replica).
    old = {"kind": "domain", "id": "versions.example.com", "last_analysis": 1_000}
    kv.put_many([(CacheEntry(KEY, "harmless", old, NOW, NOW + 3600), [KEY])])
    assert coll[KEY] == newer
    # A newer analysis than the stored one replaces it.
    fresh = {"kind": "domain", "id": "versions.example.com", "last_analysis": 3_000}
    kv.put_many([(CacheEntry(KEY, "suspicious", fresh, NOW, NOW + 3600), [KEY])])
    assert coll[KEY]["verdict"] == "suspicious" and coll[KEY]["report_date"] == 3_000
    # With no analysis date on either side, the later stored_at decides.
    coll[KEY] = doc("harmless", 0, NOW + 100)
    kv.put_many([(CacheEntry(KEY, "not_found", None, NOW, NOW + 3600), [KEY])])
    assert coll[KEY]["verdict"] == "harmless"
    del coll[KEY]
    kv.put_many([(CacheEntry(KEY, "not_found", None, NOW, NOW + 3600), [KEY])])
    assert coll[KEY]["verdict"] == "not_found" and not kv.failed
