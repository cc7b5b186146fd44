"""VirusTotal IOC sources (collection, Livehunt, IoC Stream, search) republished as STIX, against
the emulator; and per-kind collections fed from the verdict log."""

from __future__ import annotations

import json
from dataclasses import replace

from stix2validator import ValidationOptions, validate_instance

from connectors.core import config
from connectors.core.enricher import Enricher
from taxii import config as taxii_config
from taxii.publisher import poll_sources, publish_once
from taxii.store import Store

from .conftest import FEED, INBOX, OPEN, taxii_doc


def objects(store, collection):
    return [json.loads(o["body"]) for o in store.query(collection, limit=1000).objects]


async def test_vt_sources_publish_risky_objects_once(taxii_settings, tmp_path):
    raw = dict(taxii_settings.raw)
    raw["taxii"] = dict(raw["taxii"], sources=[
        {"type": "collection", "id": "demo-apt-campaign", "collection": FEED, "every": 60},
        {"type": "livehunt", "collection": INBOX, "every": 60},
        {"type": "ioc_stream", "collection": INBOX, "every": 60},
        {"type": "search", "query": "p:10+", "collection": OPEN, "every": 60},
    ])  # fmt: skip
    settings = replace(taxii_settings, raw=raw)
    cfg = taxii_config.load(settings.raw)
    store = Store(tmp_path / "sources.db")
    e = Enricher(settings, connector="taxii")
    first = await poll_sources(e, store, cfg, {})
    again = await poll_sources(e, store, cfg, {})  # same data, same versions: nothing new
    await e.aclose()
    e.close()
    assert first > 0 and again == 0
    feed = objects(store, FEED)
    patterns = {o["pattern"] for o in feed if o["type"] == "indicator"}
    assert {
        "[domain-name:value = 'malware.wicar.org']",
        "[ipv4-addr:value = '203.0.113.66']",
        "[url:value = 'http://malware.wicar.org/data/eicar.com']",
        "[file:hashes.'SHA-256' = "
        "'275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f']",
    } <= patterns
    assert objects(store, INBOX) and objects(store, OPEN)
    for o in feed + objects(store, INBOX) + objects(store, OPEN):
        assert validate_instance(o, ValidationOptions(version="2.1")).is_valid


async def test_per_kind_collection_from_the_verdict_log(emulator_url, tmp_path):
    doc = taxii_doc(tmp_path)
    doc["taxii"]["collections"][1]["publish"] = ["malicious"]
    doc["taxii"]["collections"][1]["kinds"] = ["ip"]
    doc["taxii"]["collections"][1]["test"] = True  # fed by the emulator
    settings = config.for_emulator(
        config.from_mapping({"quota": {"tier": "unlimited"}, **doc}, env={}),
        emulator_url,
        str(tmp_path),
    )
    e = Enricher(settings, connector="cli")
    await e.enrich(["44d88612fea8a8f36de82e1278abb02f", "203.0.113.66"])
    await e.aclose()
    store = Store(tmp_path / "kinds.db")
    publish_once(e, store, taxii_config.load(settings.raw))
    e.close()
    ip_only = [o["pattern"] for o in objects(store, INBOX) if o["type"] == "indicator"]
    everything = [o["pattern"] for o in objects(store, FEED) if o["type"] == "indicator"]
    assert ip_only == ["[ipv4-addr:value = '203.0.113.66']"]
    assert len(everything) == 2
