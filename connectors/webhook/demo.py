"""The receiver in `vtconnect demo`: a Kibana (Elastic) alert and a Sentinel incident posted in
synchronous mode to a receiver on an ephemeral loopback port, the enrichment printed."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Dict, List

import aiohttp
from aiohttp import web
from rich.console import Console
from rich.table import Table

from connectors.core.config import Settings
from connectors.core.enricher import Enricher

from .app import build_app

TOKEN = "demo-token-0123456789"  # a throw-away bearer token for this one run
EICAR_MD5 = "44d88612fea8a8f36de82e1278abb02f"

# As Kibana's webhook connector sends `{{context.alerts}}` (flat ECS alert fields) and as a
# Sentinel Logic App forwards the incident trigger's body.
SAMPLES: Dict[str, Dict[str, Any]] = {
    "elastic": {
        "context": {
            "alerts": [
                {
                    "kibana.alert.uuid": "demo-1",
                    "kibana.alert.rule.name": "Outbound C2 beacon",
                    "source": {"ip": "10.20.0.7"},
                    "destination": {"ip": "203.0.113.66"},
                    "file": {"hash": {"md5": EICAR_MD5}},
                    "message": "beacon to hxxp://malware.wicar[.]org/data/eicar.com",
                }
            ]
        }
    },
    "sentinel": {
        "object": {
            "name": "demo-incident",
            "properties": {
                "title": "Suspicious download",
                "incidentNumber": 7,
                "lastModifiedTimeUtc": "2026-11-22T10:00:00Z",
                "relatedEntities": [
                    {"kind": "Url", "properties": {"url": "http://example.com/setup"}},
                    {"kind": "Ip", "properties": {"address": "203.0.113.66"}},
                    {
                        "kind": "FileHash",
                        "properties": {"algorithm": "MD5", "hashValue": EICAR_MD5},
                    },
                ],
            },
        }
    },
}


async def run(console: Console, settings: Settings, enricher: Enricher) -> List[Dict[str, Any]]:
    """Start a receiver with one demo source, post each sample with ?wait=10, print and return
    the enriched alerts. `settings` should point at an emulator (`config.for_emulator`)."""
    raw = {"webhook": {"sources": [{"name": "demo", "auth": "bearer", "secret": TOKEN}]}}
    runner = web.AppRunner(
        build_app(replace(settings, raw=raw), enricher), access_log=None, shutdown_timeout=1.0
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}"
    console.print(f"webhook receiver at {url}")
    out = []
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            for fmt, alert in SAMPLES.items():
                async with http.post(f"{url}/v1/alerts/{fmt}?wait=10", json=alert) as resp:
                    enriched = await resp.json(content_type=None)
                if resp.status != 200:
                    console.print(f"{fmt}: HTTP {resp.status} {enriched}", markup=False)
                    continue
                out.append(enriched)
                _print(console, fmt, enriched["enrichment"])
    finally:
        await runner.cleanup()
    return out


def _print(console: Console, fmt: str, block: Dict[str, Any]) -> None:
    table = Table(title=f"POST /v1/alerts/{fmt}: {block['summary']}", title_justify="left")
    for col in ("indicator", "kind", "verdict", "score", "reason"):
        table.add_column(col, overflow="fold")
    for o in block["observables"]:
        table.add_row(o["value"], o["kind"], o["verdict"], str(o["score"]), o["reason"])
    console.print(table)
    console.print(f"overall {block['verdict']}, is_risky={block['is_risky']}", markup=False)
