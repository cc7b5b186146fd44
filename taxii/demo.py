"""The TAXII part of `vtconnect demo`: publish the demo's malicious and suspicious verdicts as
STIX 2.1, read them back over HTTP with taxii2-client (as a SIEM would: collection looked up by
title, Basic auth), and print the flat feed a firewall would poll."""

from __future__ import annotations

import asyncio
import base64
import urllib.request
from dataclasses import replace
from typing import Any, Dict, List

from aiohttp import web
from rich.console import Console

from connectors.core.config import Settings
from connectors.core.enricher import Enricher

from .config import hash_password
from .publisher import publish_once
from .server import CONFIG, STORE, build_app

COLLECTION = "0b1e6f3a-7c2d-4e5f-8a9b-1c2d3e4f5a6b"
TITLE = "VirusTotal malicious"
USER, PASSWORD = "siem", "demo-password"


def demo_settings(settings: Settings) -> Settings:
    """The demo's [taxii] section: one collection fed from the verdict log, one reader."""
    raw = dict(settings.raw)
    raw["taxii"] = {
        "store": str(settings.state_path / "taxii-demo.db"),
        "collections": [{"id": COLLECTION, "title": TITLE, "read": [USER],
                         "publish": ["malicious", "suspicious"],
                         "test": True}],  # the demo runs on the emulator
        "users": [{"name": USER, "password_hash": hash_password(PASSWORD, 10_000)}],
    }  # fmt: skip
    return replace(settings, raw=raw)


async def run(console: Console, settings: Settings, enricher: Enricher) -> List[Dict[str, Any]]:
    """Publish what `enricher` has seen, read it back, print it; returns the objects read."""
    from taxii2client.v21 import Server, as_pages

    console.rule("TAXII 2.1: republished indicators")
    app = build_app(demo_settings(settings), None)
    published = publish_once(enricher, app[STORE], app[CONFIG])
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    try:

        def read_back() -> List[Dict[str, Any]]:
            server = Server(f"{url}/taxii2/", user=USER, password=PASSWORD)
            coll = next(c for c in server.default.collections if c.title == TITLE)
            out: List[Dict[str, Any]] = []
            for env in as_pages(coll.get_objects, per_request=100):
                out += env.get("objects", [])
            return out

        def feed(path: str) -> str:
            auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            req = urllib.request.Request(url + path, headers={"Authorization": f"Basic {auth}"})
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.read().decode()

        objects = await asyncio.to_thread(read_back)
        console.print(
            f"published {published} STIX objects; taxii2-client read {len(objects)} back from "
            f"{url}/{app[CONFIG].api_root}/collections/{COLLECTION}/",
            markup=False,
        )
        for o in objects:
            if o["type"] == "indicator":
                console.print(f"  {o['pattern']}  confidence {o['confidence']}", markup=False)
            elif o["type"] in ("malware", "relationship"):
                console.print(f"  {o['type']}: {o.get('name', o.get('relationship_type'))}",
                              markup=False)  # fmt: skip
        path = f"/feeds/{COLLECTION}/all.txt"
        text = await asyncio.to_thread(feed, path)
        console.print(f"flat feed (Palo Alto EDL style) {url}{path}:", markup=False)
        console.print(text.rstrip() or "(empty)", markup=False)
        return objects
    finally:
        await runner.cleanup()
