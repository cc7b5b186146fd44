"""Emulator answers never pass for VirusTotal's: indicators made from them carry a label and
`x_vtconnect_source`, flat feeds say so in a comment line, and the publisher puts them only in
collections marked `test = true` (never on a feed that firewalls enforce)."""

from __future__ import annotations

import copy

from connectors.core.enricher import Enricher
from taxii import config as taxii_config
from taxii.feeds import EMPTY_COMMENT, EMULATOR_COMMENT, collect, render
from taxii.publisher import publish_once
from taxii.store import Store

from .conftest import FEED

EICAR = "44d88612fea8a8f36de82e1278abb02f"


async def _published(settings, test_flag):
    raw = copy.deepcopy(dict(settings.raw))
    raw["taxii"]["collections"][0]["test"] = test_flag
    settings = settings.with_(raw=raw)
    enricher = Enricher(settings, connector="cli")
    await enricher.enrich([EICAR, "203.0.113.66"])
    await enricher.aclose()
    cfg = taxii_config.load(settings.raw)
    store = Store(raw["taxii"]["store"])
    try:
        publish_once(enricher, store, cfg)
        rows = store.query(FEED, limit=1000).objects
        feed = render(collect(store, FEED, "all"), "txt").text
    finally:
        store.close()
        enricher.close()
    return rows, feed


async def test_emulator_data_only_reaches_collections_marked_test(taxii_settings, caplog):
    rows, feed = await _published(taxii_settings, False)
    assert rows == [] and feed == EMPTY_COMMENT + "\n"  # no entry, said explicitly
    assert "not marked test = true" in caplog.text


async def test_emulator_data_is_marked_in_stix_and_feeds(taxii_settings):
    import json

    rows, feed = await _published(taxii_settings, True)
    indicators = [json.loads(r["body"]) for r in rows if r["type"] == "indicator"]
    assert len(indicators) == 2
    for ind in indicators:
        assert ind["x_vtconnect_source"] == "emulator"
        assert "vtconnect-emulator-data" in ind["labels"]
    lines = feed.splitlines()
    assert lines[0] == EMULATOR_COMMENT and sorted(lines[1:]) == ["203.0.113.66", EICAR]
