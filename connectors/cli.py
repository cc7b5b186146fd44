"""`vtconnect` command line. Sub-commands stay thin: they parse options and call the packages.

Exit codes: 0 done; 1 some lookups failed (verdict error) or VirusTotal could not be reached;
2 usage, configuration or input error; 3 VirusTotal rejected the API key.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import List, Optional, Sequence

import click
from rich.console import Console

from . import formats
from .core import config as config_mod
from .core.enricher import Enricher
from .core.gateway import CredentialsRejected, Gateway, GatewayError
from .core.quota import Priority
from .core.verdict import Enrichment, Verdict

EXIT_FAILED, EXIT_USAGE, EXIT_CREDENTIALS = 1, 2, 3
MAX_LINE = 8192  # longer input lines come back skipped, shortened in the output


class Ctx:
    def __init__(self, config_path: Optional[str], verbose: int) -> None:
        self.config_path = config_path
        self.verbose = verbose
        self._settings: Optional[config_mod.Settings] = None

    @property
    def settings(self) -> config_mod.Settings:
        if self._settings is None:
            try:
                self._settings = config_mod.load(self.config_path)
            except config_mod.ConfigError as exc:
                raise click.UsageError(str(exc)) from None
        return self._settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    envvar="VTCONNECT_CONFIG",
    type=click.Path(),
    help="vtconnect.toml to read (default: $VTCONNECT_CONFIG, else ./vtconnect.toml).",
)
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv for debug).")
@click.version_option(package_name="vtconnect")
@click.pass_context
def main(ctx: click.Context, config_path: Optional[str], verbose: int) -> None:
    """VirusTotal enrichment for the tools security teams already run."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.obj = Ctx(config_path, verbose)


def _read_values(source: str) -> List[str]:
    """Lines of FILE or stdin; undecodable or huge lines are kept so they come back skipped."""
    try:
        data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except OSError as exc:
        raise click.BadParameter(f"cannot read {source}: {exc.strerror}", param_hint="-f") from None
    values = []
    for line in data.splitlines():
        line = line.strip()
        if not line or line.startswith(b"#"):
            continue
        try:
            values.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            values.append(line.decode("utf-8", "replace"))
    return values


@main.command()
@click.argument("values", nargs=-1)
@click.option(
    "-f", "--file", "source", help="Read one indicator per line from FILE, or - for stdin."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv", "stix"]),
    default="table",
    show_default=True,
)
@click.option(
    "--type",
    "kind",
    default="auto",
    show_default=True,
    type=click.Choice(
        ["auto", "file", "hash", "md5", "sha1", "sha256", "url", "domain", "ip", "ipv4", "ipv6"]
    ),
    help="Treat every value as this kind.",
)
@click.option("--no-cache", is_flag=True, help="Ask VirusTotal even when the cache has an answer.")
@click.option(
    "--rescan-after-days",
    type=click.IntRange(min=0),
    default=None,
    help="Request a reanalysis of reports older than N days (0: never).",
)
@click.option(
    "--max-lookups",
    type=click.IntRange(min=0),
    default=None,
    help="At most N API calls; the rest come back as quota.",
)
@click.option(
    "--deadline",
    type=click.FloatRange(min=0.1),
    default=None,
    help="Seconds to wait for API budget and answers before giving up on the rest.",
)
@click.option(
    "--priority",
    type=click.Choice([p.name.lower() for p in Priority]),
    default="interactive",
    show_default=True,
)
@click.pass_obj
def lookup(
    obj: Ctx,
    values: Sequence[str],
    source: Optional[str],
    fmt: str,
    kind: str,
    no_cache: bool,
    rescan_after_days: Optional[int],
    max_lookups: Optional[int],
    deadline: Optional[float],
    priority: str,
) -> None:
    """Enrich indicators (hashes, URLs, domains, IPs) with VirusTotal verdicts."""
    items = list(values) + (_read_values(source) if source else [])
    if not items:
        raise click.UsageError("give indicators as arguments or with -f FILE (- for stdin)")
    settings = obj.settings
    console = Console(stderr=True)
    enricher = Enricher(settings, connector="cli")
    kwargs = dict(
        kind=kind,
        use_cache=not no_cache,
        rescan_after_days=rescan_after_days,
        max_lookups=max_lookups,
        deadline=deadline,
        priority=Priority[priority.upper()],
    )
    try:
        results = asyncio.run(_lookup(enricher, items, kwargs, console))
    except CredentialsRejected as exc:
        _credentials_exit(exc)
    finally:
        enricher.close()
    if fmt == "json":
        click.echo(formats.to_json(results))
    elif fmt == "stix":
        click.echo(formats.to_stix(results))
    elif fmt == "csv":
        click.echo(formats.to_csv(results), nl=False)
    else:
        formats.print_table(results, Console())
    if any(r.verdict == Verdict.ERROR for r in results):
        sys.exit(EXIT_FAILED)


def _credentials_exit(exc: CredentialsRejected) -> None:
    if exc.code == "NoApiKey":  # nothing was sent: a configuration error
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(f"error: VirusTotal rejected the API key ({exc.code}): {exc.message}", err=True)
    sys.exit(EXIT_CREDENTIALS)


async def _lookup(
    enricher: Enricher, items: List[str], kwargs: dict, console: Console
) -> List[Enrichment]:
    items = [v if len(v) <= MAX_LINE else v[:64] + "…(truncated)" for v in items]
    try:
        if len(items) < 50 or not console.is_terminal:
            return await enricher.enrich(items, **kwargs)
        from rich.progress import Progress

        results: List[Enrichment] = []
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("enriching", total=len(items))
            for i in range(0, len(items), 100):
                results += await enricher.enrich(items[i : i + 100], **kwargs)
                progress.update(task, advance=len(items[i : i + 100]))
        return results
    finally:
        await enricher.aclose()


# -- scan ------------------------------------------------------------------------------------
@main.group()
def scan() -> None:
    """Submit a URL or a file to VirusTotal for analysis."""


def _run_scan(settings: config_mod.Settings, submit, wait: bool, timeout: float) -> None:
    async def run() -> None:
        gw = Gateway(settings.virustotal)
        try:
            analysis_id = await submit(gw)
            click.echo(f"analysis {analysis_id}")
            if not wait:
                return
            from .core.analysis import wait_for_analysis

            doc = await wait_for_analysis(gw, analysis_id, timeout=timeout)
            attrs = doc["data"]["attributes"]
            stats = attrs.get("stats", {})
            click.echo(
                f"status {attrs.get('status')}: "
                + ", ".join(f"{k} {v}" for k, v in stats.items() if v)
            )
        finally:
            await gw.aclose()

    try:
        asyncio.run(run())
    except CredentialsRejected as exc:
        _credentials_exit(exc)
    except GatewayError as exc:
        click.echo(f"scan failed: {exc}", err=True)
        sys.exit(EXIT_FAILED)


@scan.command("url")
@click.argument("url")
@click.option("--wait/--no-wait", default=False, help="Poll until the analysis completes.")
@click.option("--timeout", type=click.FloatRange(min=1), default=300, show_default=True)
@click.pass_obj
def scan_url(obj: Ctx, url: str, wait: bool, timeout: float) -> None:
    """Submit URL for analysis."""
    from .core.observable import InvalidObservable, parse

    try:
        obs = parse(url, "url")
    except InvalidObservable as exc:
        raise click.BadParameter(str(exc), param_hint="URL") from None
    _run_scan(obj.settings, lambda gw: gw.scan_url(obs.value), wait, timeout)


@scan.command("file")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, readable=True))
@click.option("--wait/--no-wait", default=False, help="Poll until the analysis completes.")
@click.option("--timeout", type=click.FloatRange(min=1), default=600, show_default=True)
@click.pass_obj
def scan_file(obj: Ctx, path: str, wait: bool, timeout: float) -> None:
    """Upload PATH (up to 650 MB) for analysis."""
    _run_scan(obj.settings, lambda gw: gw.scan_file(path), wait, timeout)


# -- emulator --------------------------------------------------------------------------------
@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8642, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--tier",
    default="unlimited",
    show_default=True,
    type=click.Choice(["public", "premium", "unlimited"]),
    help="Quota tier for keys not listed with --key.",
)
@click.option(
    "--key", "keys", multiple=True, metavar="KEY:TIER", help="An API key and its tier; repeatable."
)
@click.option("--strict-keys", is_flag=True, help="Reject keys not given with --key.")
@click.option(
    "--faults",
    default="",
    metavar="JSON",
    help='Fault injection, e.g. \'{"latency_ms": 50, "error_rates": {"TransientError": 0.1}}\'.',
)
def emulator(
    host: str, port: int, tier: str, keys: Sequence[str], strict_keys: bool, faults: str
) -> None:
    """Run the VirusTotal API v3 emulator (point VT_API_URL at it)."""
    from .emulator.cli_support import build_config
    from .emulator.server import serve

    try:
        config = build_config(tier=tier, keys=keys, strict_keys=strict_keys, faults=faults)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    serve(host, port, config)


# -- cache and quota -------------------------------------------------------------------------
@main.group()
def cache() -> None:
    """Inspect or empty the verdict cache."""


@cache.command("stats")
@click.pass_obj
def cache_stats(obj: Ctx) -> None:
    from .core.cache import Cache

    c = Cache(obj.settings.cache_path, obj.settings.cache)
    try:
        stats = c.stats()
    finally:
        c.close()
    click.echo(f"cache {obj.settings.cache_path}")
    for k, v in stats.items():
        click.echo(f"  {k}: {v}")


@cache.command("purge")
@click.option(
    "--all", "everything", is_flag=True, help="Remove every entry, not only expired ones."
)
@click.pass_obj
def cache_purge(obj: Ctx, everything: bool) -> None:
    from .core.cache import Cache

    c = Cache(obj.settings.cache_path, obj.settings.cache)
    try:
        n = c.purge(expired_only=not everything)
    finally:
        c.close()
    click.echo(f"removed {n} entries")


@main.command()
@click.pass_obj
def quota(obj: Ctx) -> None:
    """Show the API budget used and left for the configured key."""
    from .core.quota import QuotaGovernor

    s = obj.settings
    per_minute, per_day = s.quota.limits()
    gov = QuotaGovernor(s.quota_path, s.virustotal.api_key.get(), per_minute, per_day)
    click.echo(f"tier {s.quota.tier}")
    for k, v in gov.status().items():
        click.echo(f"  {k}: {v}")


@main.command()
@click.pass_obj
def demo(obj: Ctx) -> None:
    """Run the main pipelines against a local emulator and print what they produce."""
    from .demo import run_demo

    sys.exit(run_demo())


@main.command()
@click.option(
    "--taxii", "parts", flag_value="taxii", multiple=True, help="Run the TAXII 2.1 server."
)
@click.option("--webhook", "parts", flag_value="webhook", multiple=True, help="Run the receiver.")
@click.pass_obj
def serve(obj: Ctx, parts: Sequence[str]) -> None:
    """Run the server parts in one process (127.0.0.1 unless configured); stop with SIGTERM."""
    from .serve import plan
    from .serve import serve as run

    chosen = list(dict.fromkeys(parts)) or [
        p for p in ("taxii", "webhook") if p in obj.settings.raw
    ]
    if not chosen:
        raise click.UsageError(
            "nothing to serve: pass --taxii/--webhook or configure [taxii] or [webhook]"
        )
    try:
        parts_plan = plan(obj.settings, chosen)
    except config_mod.ConfigError as exc:
        raise click.UsageError(str(exc)) from None

    def ready(urls: dict) -> None:
        for name, url in urls.items():
            click.echo(f"{name} listening on {url}", err=True)

    try:
        asyncio.run(run(obj.settings, parts_plan, ready))
    except config_mod.ConfigError as exc:  # e.g. core.database unreachable, schema too new
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)


def _register_connectors() -> None:
    from .cli_db import db
    from .cli_splunk import splunk
    from .cli_taxii import taxii
    from .cli_webhook import webhook

    main.add_command(db)
    main.add_command(splunk)
    main.add_command(taxii)
    main.add_command(webhook)


_register_connectors()

if __name__ == "__main__":  # pragma: no cover
    main()
