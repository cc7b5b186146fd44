"""`vtconnect scan url|file`: submit for analysis, optionally wait for the verdict (read from
the analysis itself, no further API call)."""

from __future__ import annotations

import asyncio
import json
import sys

import click

from ..core import config as config_mod
from ..core.gateway import CredentialsRejected, Gateway, GatewayError
from .context import EXIT_FAILED, Ctx, credentials_exit
from .quota import governor


@click.group()
def scan() -> None:
    """Submit a URL or a file to VirusTotal for analysis."""


def _run_scan(
    settings: config_mod.Settings, submit, wait: bool, timeout: float, fmt: str
) -> None:
    async def run() -> dict:
        gov = governor(settings)
        gw = Gateway(settings.virustotal, gov)  # submissions and polls take slots too
        try:
            analysis_id = await submit(gw)
            if not wait:
                return {"analysis_id": analysis_id, "status": "queued"}
            from ..core.analysis import wait_for_analysis

            doc = await wait_for_analysis(gw, analysis_id, timeout=timeout)
            return scan_result(analysis_id, doc, settings)
        finally:
            await gw.aclose()
            gov.close()

    try:
        out = asyncio.run(run())
    except CredentialsRejected as exc:
        credentials_exit(exc)
    except GatewayError as exc:
        click.echo(f"scan failed: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    if fmt == "json":
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(f"analysis {out['analysis_id']}: {out['status']}")
    if "verdict" in out:
        click.echo(f"verdict  {out['verdict']} ({out['score']}): {out['reason']}")
        click.echo(f"link     {out['link']}")
    else:
        click.echo("(add --wait to poll until the analysis completes and see the verdict)")


def scan_result(analysis_id: str, doc: dict, settings: config_mod.Settings) -> dict:
    """The verdict from the completed analysis itself (its stats and engine results), so seeing
    it costs no further API call."""
    from ..core.enricher import from_report
    from ..core.observable import parse
    from ..core.report import parse_report

    attrs = doc["data"]["attributes"]
    meta = doc.get("meta") or {}
    out = {"analysis_id": analysis_id, "status": attrs.get("status"),
           "stats": attrs.get("stats", {})}  # fmt: skip
    info = meta.get("file_info") or meta.get("url_info") or {}
    value = info.get("sha256") or info.get("url")
    if not value:
        return out
    kind = "file" if "sha256" in info else "url"
    obs = parse(value, kind)
    vt_type = "file" if kind == "file" else "url"
    analysed = {
        "last_analysis_stats": attrs.get("stats", {}),
        "last_analysis_results": attrs.get("results", {}),
        "last_analysis_date": attrs.get("date"),
    }
    oid = info.get("sha256") or info.get("id")
    report = parse_report({"data": {"type": vt_type, "id": oid, "attributes": analysed}})
    enr = from_report(obs, report, settings.policy)
    out.update(value=obs.value, verdict=enr.verdict.value, score=enr.score, reason=enr.reason,
               link=enr.link)  # fmt: skip
    return out


@scan.command("url")
@click.argument("url")
@click.option("--wait/--no-wait", default=False, help="Poll until the analysis completes.")
@click.option("--timeout", type=click.FloatRange(min=1), default=300, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.pass_obj
def scan_url(obj: Ctx, url: str, wait: bool, timeout: float, fmt: str) -> None:
    """Submit URL for analysis."""
    from ..core.observable import InvalidObservable, parse

    try:
        obs = parse(url, "url")
    except InvalidObservable as exc:
        raise click.BadParameter(str(exc), param_hint="URL") from None
    _run_scan(obj.settings, lambda gw: gw.scan_url(obs.value), wait, timeout, fmt)


@scan.command("file")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, readable=True))
@click.option("--wait/--no-wait", default=False, help="Poll until the analysis completes.")
@click.option("--timeout", type=click.FloatRange(min=1), default=600, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.pass_obj
def scan_file(obj: Ctx, path: str, wait: bool, timeout: float, fmt: str) -> None:
    """Upload PATH (up to 650 MB) for analysis."""
    _run_scan(obj.settings, lambda gw: gw.scan_file(path), wait, timeout, fmt)
