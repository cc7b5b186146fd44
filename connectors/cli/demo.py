"""`vtconnect demo` / `make demo`: the main job end to end against a local emulator.

No API key and no network: an emulator is started on an ephemeral loopback port, vt-py is pointed
at it, and a throw-away state directory holds the cache and the quota ledger.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile

import click
from rich.console import Console

from ..core import config as config_mod
from ..core.enricher import Enricher
from . import render
from .context import Ctx

SAMPLES = [
    "44d88612fea8a8f36de82e1278abb02f",  # EICAR test file, MD5
    "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",  # the empty file
    "hxxps://example[.]com/login",  # defanged, as analysts paste them
    "example.org",
    "203.0.113.66",  # a documentation address the emulator reports as malicious
    "10.1.2.3",  # private: never sent to VirusTotal
    "fileserver.corp",  # internal suffix: never sent
    "8a9f3c0e5d4b2a1f6e7d8c9b0a1f2e3d",  # an unknown hash
    "not an indicator",
]


async def _run(console: Console) -> int:
    from ..emulator.server import running_emulator

    with tempfile.TemporaryDirectory(prefix="vtconnect-demo-") as state:
        async with running_emulator() as emu:
            console.print(f"[bold]VirusTotal API emulator[/] at {emu.url} (no real API is called)")
            # The emulator enforces no quota by default, so neither do we: no waiting in a demo.
            base = config_mod.from_mapping({"quota": {"tier": "unlimited"}})
            settings = config_mod.for_emulator(base, emu.url, state)
            enricher = Enricher(settings, connector="demo")
            try:
                first = await enricher.enrich(SAMPLES)
                render.print_table(first, console)
                again = await enricher.enrich(SAMPLES)
                hits = sum(r.cached for r in again)
                console.print(
                    f"second pass: {hits}/{len(again)} answered from the cache, no API calls"
                )
                console.print("JSON for the first malicious result:")
                risky = [r for r in first if r.verdict.value == "malicious"]
                if risky:
                    console.print_json(json.dumps(render.rows(risky[:1])[0]))
                await _taxii(console, settings, enricher)
                await _webhook(console, settings, enricher)
            finally:
                await enricher.aclose()
                enricher.close()
    return 0


async def _taxii(console: Console, settings: config_mod.Settings, enricher: Enricher) -> None:
    """Publish the verdicts above over TAXII 2.1, read them back with taxii2-client (Basic auth,
    collection by title, as a SIEM would) and print the flat feed a firewall polls."""
    from taxii.demo import run

    await run(console, settings, enricher)


DEMO_ALERTS = {
    "elastic": {"context": {"alerts": [{
        "kibana.alert.uuid": "demo-1", "kibana.alert.rule.name": "Outbound C2 beacon",
        "source": {"ip": "10.20.0.7"}, "destination": {"ip": "203.0.113.66"},
        "file": {"hash": {"md5": "44d88612fea8a8f36de82e1278abb02f"}},
        "message": "beacon to hxxp://malware.wicar[.]org/data/eicar.com"}]}},
    "sentinel": {"object": {"name": "demo-incident", "properties": {
        "title": "Suspicious download", "lastModifiedTimeUtc": "2026-11-22T10:00:00Z",
        "relatedEntities": [{"kind": "Url", "properties": {"url": "http://example.com/setup"}},
                            {"kind": "Ip", "properties": {"address": "203.0.113.66"}}]}}},
}  # fmt: skip


async def _webhook(console: Console, settings: config_mod.Settings, enricher: Enricher) -> None:
    """Post a Kibana alert and a Sentinel incident to the receiver and show the enrichment."""
    from dataclasses import replace

    import aiohttp
    from aiohttp import web

    from ..webhook.app import build_app

    console.rule("Webhook: enriched alerts")
    token = "demo-token-0123456789"
    raw = {
        "webhook": {
            "sources": [{"name": "demo", "format": "auto", "auth": "bearer", "secret": token}]
        }
    }
    runner = web.AppRunner(
        build_app(replace(settings, raw=raw), enricher), access_log=None, shutdown_timeout=1.0
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
            for fmt, alert in DEMO_ALERTS.items():
                async with http.post(f"{url}/v1/alerts/{fmt}?wait=10", json=alert) as resp:
                    block = (await resp.json())["enrichment"]
                console.print(
                    f"[bold]{fmt}[/]: {block['summary']} "
                    f"(overall {block['verdict']}, is_risky={block['is_risky']})"
                )
                for o in block["observables"]:
                    console.print(f"  {o['value']}  {o['verdict']} ({o['score']})", markup=False)
    finally:
        await runner.cleanup()


def _splunk(console: Console) -> int:
    """The Splunk command through the protocol harness (builds the app on first use)."""
    from .splunk import load_packaging

    console.rule("Splunk: | vtlookup")
    return load_packaging("splunk_demo").run(console)


def run_demo() -> int:
    console = Console()
    console.rule("Core: vtconnect lookup")
    status = asyncio.run(_run(console))
    return status or _splunk(console)


@click.command()
@click.pass_obj
def demo(obj: Ctx) -> None:
    """Run the main pipelines against a local emulator and print what they produce."""
    sys.exit(run_demo())
