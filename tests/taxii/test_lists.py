"""The [lists] section in the TAXII parts: an ignored value is never published (a live
indicator for it is revoked), a forced verdict replaces the logged one, and `taxii pull` never
stores an indicator for an ignored value (the local collections are served)."""

from __future__ import annotations

import json
import time
from dataclasses import replace

from connectors.core import config
from connectors.core.lists import matcher
from connectors.core.store import Cache, LogRecord
from taxii import config as taxii_config
from taxii.publisher import publish_once
from taxii.store import Store

from .conftest import FEED, INBOX
from .test_client import cli, indicator, stored


def with_lists(settings, **lists):  # type: ignore[no-untyped-def]
    return replace(settings, lists=config.ListsSettings(**lists))


class Holder:
    """What publish_once reads from the enricher: its cache and its lists."""

    def __init__(self, cache, lists) -> None:  # type: ignore[no-untyped-def]
        self.cache = cache
        self.lists = lists


def live(store: Store, value: str) -> dict:
    """indicator pattern value -> revoked? for the latest versions in the feed."""
    out = {}
    for o in store.query(FEED, limit=100, types=["indicator"]).objects:
        body = json.loads(o["body"])
        out[body["pattern"].split("'")[1]] = body.get("revoked", False)
    return out


def log(cache: Cache, value: str, verdict: str, score: int = 90) -> None:
    cache.log([LogRecord(f"domain:{value}", "domain", value, verdict, score, "cli", time.time())])
    time.sleep(0.002)  # a later modified timestamp for the next version


def test_publisher_never_publishes_ignored_and_obeys_forced_verdicts(taxii_settings, tmp_path):
    cache = Cache(tmp_path / "log.db", taxii_settings.cache)
    store = Store(tmp_path / "pub.db")
    cfg = taxii_config.load(taxii_settings.raw)
    try:
        # Published before the analyst listed them.
        log(cache, "own.example.org", "malicious")
        log(cache, "fp.example.com", "malicious")
        assert publish_once(Holder(cache, matcher(config.ListsSettings())), store, cfg) > 0
        assert live(store, "") == {"own.example.org": False, "fp.example.com": False}

        lists = matcher(
            config.ListsSettings(
                ignore=(".example.org",),
                force_harmless=("fp.example.com",),
                force_malicious=("bad.example.net",),
            )
        )
        holder = Holder(cache, lists)
        # Listing them revokes what is live, without waiting for a new verdict.
        assert publish_once(holder, store, cfg) == 2
        assert live(store, "") == {"own.example.org": True, "fp.example.com": True}
        assert publish_once(holder, store, cfg) == 0  # once per change of the lists
        log(cache, "own.example.org", "malicious")  # e.g. logged by a host without the lists
        log(cache, "new.example.org", "malicious")
        log(cache, "fp.example.com", "malicious")
        log(cache, "bad.example.net", "harmless", 0)
        publish_once(holder, store, cfg)
        assert live(store, "") == {
            "own.example.org": True,  # revoked: ignored values are not served
            "fp.example.com": True,  # forced harmless revokes like a harmless verdict
            "bad.example.net": False,  # forced malicious is published
        }
        body = next(
            json.loads(o["body"])
            for o in store.query(FEED, limit=100, types=["indicator"]).objects
            if "bad.example.net" in o["body"]
        )
        assert "[lists] force_malicious" in body.get("description", json.dumps(body))
    finally:
        cache.close()
        store.close()


def test_pull_never_stores_ignored_values(taxii_settings, server):
    from .conftest import TOKEN
    from .test_server import MEDIA, http

    objs = [
        indicator("domain", "own.example.org"),
        indicator("domain", "t1.example.net"),
        indicator("ipv4", "10.1.2.3"),
        indicator("url", "http://www.example.org/x"),
    ]
    body = json.dumps({"objects": objs}).encode()
    status, _, _ = http(
        f"{server.url}/api/collections/{FEED}/objects/", "POST", body, {"Content-Type": MEDIA}
    )
    assert status == 202
    settings = with_lists(taxii_settings, ignore=(".example.org", "10.0.0.0/8"))
    r = cli(settings, "pull", f"{server.url}/api/", "--collection", "VirusTotal malicious",
            "--token", TOKEN, "--into", "Inbox")  # fmt: skip
    assert r.exit_code == 0 and "pulled=4 rejected=0" in r.output and "ignored=3" in r.output, (
        r.output
    )
    patterns = [o["pattern"] for o in stored(taxii_settings, INBOX) if o["type"] == "indicator"]
    assert patterns == ["[domain-name:value = 't1.example.net']"]


async def test_vt_sources_leave_ignored_values_out(taxii_settings, tmp_path):
    from connectors.core.enricher import Enricher
    from taxii.publisher import poll_sources

    raw = dict(taxii_settings.raw)
    raw["taxii"] = dict(raw["taxii"], sources=[
        {"type": "collection", "id": "demo-apt-campaign", "collection": FEED, "every": 60},
    ])  # fmt: skip
    settings = with_lists(
        replace(taxii_settings, raw=raw),
        ignore=("malware.wicar.org", "203.0.113.0/24"),
        force_harmless=("275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f",),
    )
    store = Store(tmp_path / "sources.db")
    e = Enricher(settings, connector="taxii")
    try:
        await poll_sources(e, store, taxii_config.load(settings.raw), {})
    finally:
        await e.aclose()
        e.close()
    patterns = [
        json.loads(o["body"])["pattern"]
        for o in store.query(FEED, limit=1000, types=["indicator"]).objects
    ]
    store.close()
    assert "[domain-name:value = 'update-check.net']" in patterns  # not listed
    # The ignored host's URLs go too; the forced-harmless file is not risky any more.
    for gone in ("malware.wicar.org", "203.0.113.", "275a021bbfb6489e"):
        assert not any(gone in p for p in patterns), (gone, patterns)


def test_a_revocation_is_always_a_newer_version():
    """Revoked in the same millisecond as it was published (or with the publishing clock
    ahead): still a later `modified`, or the store would take it for the same version."""
    from taxii.publisher import _after

    body = {"modified": "2026-12-02T17:00:00.000Z"}
    assert _after("2026-12-02T17:00:00.000Z", body) == "2026-12-02T17:00:00.001Z"
    assert _after("2026-12-02T16:59:59.000Z", body) == "2026-12-02T17:00:00.001Z"
    assert _after("2026-12-02T17:00:00.005Z", body) == "2026-12-02T17:00:00.005Z"
