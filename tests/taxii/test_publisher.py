"""The publisher inside `vtconnect serve`: verdicts from any connector reach the TAXII
collections as valid STIX 2.1 (Indicator, Malware, `indicates`), and the task stops with the
server."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace

import stix2
from stix2validator import ValidationOptions, validate_instance

from connectors.core.enricher import Enricher
from connectors.serve import plan, serve

from .conftest import FEED, PASSWORD
from .test_server import http

EICAR = "44d88612fea8a8f36de82e1278abb02f"


def valid(obj):
    result = validate_instance(obj, ValidationOptions(version="2.1"))
    assert result.is_valid, [str(e) for e in result.errors]
    stix2.parse(obj, allow_custom=False)


async def test_serve_publishes_the_verdict_log_and_stops(taxii_settings):
    raw = dict(taxii_settings.raw)
    raw["taxii"] = dict(raw["taxii"], port=0)
    settings = replace(taxii_settings, raw=raw)
    splunk = Enricher(settings, connector="splunk")  # another connector's verdicts
    await splunk.enrich([EICAR, "example.com", "203.0.113.66"])
    await splunk.aclose()
    splunk.close()
    stop, urls = asyncio.Event(), {}
    task = asyncio.create_task(serve(settings, plan(settings, ["taxii"]), urls.update, stop))
    try:
        for _ in range(200):
            if urls:
                break
            await asyncio.sleep(0.02)
        url = f"{urls['taxii']}/api/collections/{FEED}/objects/"
        objs: list = []
        deadline = time.time() + 10
        while time.time() < deadline and not any(o["type"] == "malware" for o in objs):
            raw_body = (await asyncio.to_thread(http, url))[2]
            objs = json.loads(raw_body).get("objects", [])
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)  # the publisher task is cancelled on cleanup
    types = sorted(o["type"] for o in objs)
    assert types == ["identity", "indicator", "indicator", "malware", "marking-definition",
                     "note", "note", "relationship"]  # fmt: skip (notes: detection names)
    by_type = {o["type"]: o for o in objs}
    eicar = next(o for o in objs if o["type"] == "indicator" and EICAR in o["pattern"])
    assert by_type["relationship"]["source_ref"] == eicar["id"]
    assert by_type["relationship"]["target_ref"] == by_type["malware"]["id"]
    assert eicar["labels"][0] == "virus.eicar/test"  # the threat label from the cached report
    assert eicar["created_by_ref"] == by_type["identity"]["id"]
    assert eicar["object_marking_refs"] == [by_type["marking-definition"]["id"]]
    assert eicar["external_references"][0]["url"].startswith("https://www.virustotal.com/gui/")
    for o in objs:
        valid(o)
    assert all(t.get_name() != "taxii-publisher" for t in asyncio.all_tasks())


async def test_demo_publishes_and_reads_back(taxii_settings):
    from rich.console import Console

    from taxii.demo import run

    e = Enricher(taxii_settings, connector="demo")
    await e.enrich([EICAR, "example.com", "malware.wicar.org"])
    console = Console(record=True, width=200)
    try:
        objects = await run(console, taxii_settings, e)
    finally:
        await e.aclose()
        e.close()
    text = console.export_text()
    assert "[file:hashes.MD5 = '44d88612fea8a8f36de82e1278abb02f']" in text
    assert "\nmalware.wicar.org\n" in text and "example.com" not in text.split("flat feed")[1]
    for o in objects:
        valid(o)


def test_feed_uses_basic_auth_too(server):
    status, headers, _ = http(f"{server.url}/feeds/{FEED}/all.csv", user=("analyst", PASSWORD))
    assert status == 200 and headers["Content-Type"].startswith("text/csv")


def test_two_processes_publish_each_verdict_once(tmp_path):
    """Both servers read cursor "" and race: the second transaction sees the cursor moved and
    stores nothing (otherwise every verdict would get two versions, one per process)."""
    from connectors.core import stix as core_stix
    from taxii.store import Store

    a, b = Store(tmp_path / "shared.db"), Store(tmp_path / "shared.db")
    try:
        ind = dict(core_stix.PRODUCER)
        assert a.publish({FEED: [ind]}, "publisher:verdict_log", "", "7") == 1
        assert b.publish({FEED: [ind]}, "publisher:verdict_log", "", "7") is None
        assert b.get_state("publisher:verdict_log") == "7"
        assert len(b.query(FEED, limit=10, versions=["all"]).objects) == 1
    finally:
        a.close(), b.close()
