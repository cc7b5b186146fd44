"""`vtconnect` command line. Sub-commands stay thin: they parse options and call the packages.

Exit codes: 0 done; 1 some lookups failed (verdict error) or VirusTotal could not be reached;
2 usage, configuration or input error; 3 VirusTotal rejected the API key.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any, List, Optional, Sequence

import click
from rich.console import Console

from . import formats
from .core import config as config_mod
from .core.enricher import Enricher
from .core.gateway import CredentialsRejected, Gateway, GatewayError
from .core.quota import Priority, QuotaGovernor
from .core.verdict import Enrichment, Verdict

EXIT_FAILED, EXIT_USAGE, EXIT_CREDENTIALS, EXIT_INTERRUPTED = 1, 2, 3, 130
MAX_LINE = 8192  # longer input lines come back skipped, shortened in the output


class ConfigProblem(click.ClickException):
    """A configuration error: one line (`Error: <key> ...`) and exit 2, no usage text (the
    command line was fine; the file or the environment is not)."""

    exit_code = EXIT_USAGE


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
                raise ConfigProblem(str(exc)) from None
        return self._settings


class Root(click.Group):
    """`--config PATH` and `-v` may come after the sub-command too (`vtconnect lookup X --config
    c.toml`): they are moved in front of it before click parses, up to a `--`."""

    def parse_args(self, ctx: click.Context, args: List[str]) -> List[str]:
        front: List[str] = []
        rest: List[str] = []
        i = 0
        while i < len(args):
            a = args[i]
            if a == "--":
                rest += args[i:]
                break
            if a == "--config":
                if i + 1 == len(args):
                    raise click.BadOptionUsage(
                        "config", "Option '--config' requires an argument.", ctx
                    )
                front += args[i : i + 2]
                i += 2
                continue
            if a.startswith("--config=") or a == "--verbose" or (
                a.startswith("-v") and set(a[1:]) == {"v"}
            ):
                front.append(a)
            else:
                rest.append(a)
            i += 1
        return super().parse_args(ctx, front + rest)

    def invoke(self, ctx: click.Context) -> Any:
        # A store a command opens late (the shared database unreachable, a schema newer than
        # this vtconnect) is a configuration error like any other: one line, exit 2.
        try:
            return super().invoke(ctx)
        except config_mod.ConfigError as exc:
            raise ConfigProblem(str(exc)) from None


@click.group(cls=Root, context_settings={"help_option_names": ["-h", "--help"]})
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
    type=click.Choice(["table", "json", "jsonl", "csv", "stix"]),
    default="table",
    show_default=True,
    help="csv, json and jsonl stream rows as they complete; table and stix print at the end.",
)
@click.option(
    "--extract",
    is_flag=True,
    help="Find the indicators in free text (log lines, CSV, an e-mail) given as arguments or "
    "with -f, instead of one indicator per line.",
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
@click.option(
    "--remote",
    "remote_url",
    default=None,
    metavar="URL",
    help="Enrich through the hub at URL (POST /v1/enrich) instead of calling VirusTotal: "
    "as [remote] url or $VTCONNECT_REMOTE; the token from [remote] token or "
    "$VTCONNECT_REMOTE_TOKEN.",
)
@click.pass_obj
def lookup(
    obj: Ctx,
    values: Sequence[str],
    source: Optional[str],
    fmt: str,
    extract: bool,
    kind: str,
    no_cache: bool,
    rescan_after_days: Optional[int],
    max_lookups: Optional[int],
    deadline: Optional[float],
    priority: str,
    remote_url: Optional[str],
) -> None:
    """Enrich indicators (hashes, URLs, domains, IPs) with VirusTotal verdicts."""
    from .hub.config import remote as remote_settings

    try:
        remote = remote_settings(obj.settings.raw, url=remote_url)
    except config_mod.ConfigError as exc:
        raise ConfigProblem(str(exc)) from None
    if extract:
        emails = obj.settings.privacy.extract_email_domains
        items = _extracted(values, source, kind, emails)
    else:
        items = list(values) + (_read_values(source) if source else [])
    if not items:
        if extract:
            click.echo("no indicators found in the text", err=True)
            return
        raise click.UsageError("give indicators as arguments or with -f FILE (- for stdin)")
    settings = obj.settings
    console = Console(stderr=True)
    if remote.url:
        from .cli_remote import remote_lookup

        alone = {
            "--no-cache": no_cache,
            "--rescan-after-days": rescan_after_days is not None,
            "--max-lookups": max_lookups is not None,
            "--format stix": fmt == "stix",
        }
        for option, given in alone.items():
            if given:
                raise click.UsageError(f"{option} needs a direct lookup, not --remote")
        writer = formats.RowWriter(fmt, sys.stdout, Console())
        remote_lookup(remote, items, kind, priority, deadline, writer)
        return
    enricher = Enricher(settings, connector="cli")
    kwargs = dict(
        kind=kind,
        use_cache=not no_cache,
        rescan_after_days=rescan_after_days,
        priority=Priority[priority.upper()],
    )
    writer = formats.RowWriter(fmt, sys.stdout, Console())
    run = LookupRun(enricher, items, kwargs, deadline, max_lookups, writer)
    interrupted = False
    try:
        asyncio.run(run.go(console))
    except KeyboardInterrupt:
        interrupted = True
    except CredentialsRejected as exc:
        writer.close()
        _credentials_exit(exc)
    finally:
        enricher.close()
    writer.close()
    _say_unreachable(run.results, settings)
    if interrupted:
        click.echo(f"interrupted: {writer.count} of {len(items)} values done", err=True)
        sys.exit(EXIT_INTERRUPTED)
    if any(r.verdict == Verdict.ERROR for r in run.results):
        sys.exit(EXIT_FAILED)


def _extracted(
    values: Sequence[str], source: Optional[str], kind: str, email_domains: bool = False
) -> List[str]:
    """Indicators found in the text, as the Splunk command and the webhook find them."""
    from .core.extract import extract
    from .core.observable import Kind

    if source == "-":
        text = sys.stdin.buffer.read().decode("utf-8", "replace")
    elif source:
        try:
            text = Path(source).read_bytes().decode("utf-8", "replace")
        except OSError as exc:
            msg = f"cannot read {source}: {exc.strerror}"
            raise click.BadParameter(msg, param_hint="-f") from None
    else:
        text = ""
    text = "\n".join([*values, text])
    kinds = {"file": ("md5", "sha1", "sha256"), "hash": ("md5", "sha1", "sha256"),
             "ip": ("ipv4", "ipv6")}.get(kind, (kind,)) if kind != "auto" else None  # fmt: skip
    wanted = [Kind(k) for k in kinds] if kinds else None
    found = extract(text, max_chars=len(text), kinds=wanted, email_domains=email_domains)
    return [o.value for o in found]


class LookupRun:
    """Enriches the values a few at a time, so that rows stream out as they complete and a
    Ctrl-C keeps (and prints) what was already answered. --deadline and --max-lookups hold for
    the whole run, not per batch."""

    def __init__(self, enricher: Enricher, items: List[str], kwargs: dict,
                 deadline: Optional[float], max_lookups: Optional[int],
                 writer: formats.RowWriter) -> None:  # fmt: skip
        self.enricher, self.kwargs, self.writer = enricher, kwargs, writer
        self.items = [v if len(v) <= MAX_LINE else v[:64] + "…(truncated)" for v in items]
        self.deadline, self.max_lookups = deadline, max_lookups
        self.results: List[Enrichment] = []

    def _batch_size(self) -> int:
        # Enough to keep every request slot busy; at the public tier's 4/min, a few values.
        per_minute, _ = self.enricher.settings.quota.limits()
        size = self.enricher.settings.virustotal.max_concurrency * 2
        return max(1, min(size, per_minute)) if per_minute else size

    async def go(self, console: Console) -> None:
        loop = asyncio.get_running_loop()
        end = None if self.deadline is None else loop.time() + self.deadline
        size = self._batch_size()
        progress = None
        if len(self.items) >= 50 and console.is_terminal and self.writer.fmt in ("table", "stix"):
            from rich.progress import Progress

            progress = Progress(console=console, transient=True)
            progress.start()
            task = progress.add_task("enriching", total=len(self.items))
        try:
            for i in range(0, len(self.items), size):
                chunk = self.items[i : i + size]
                left = None if end is None else max(0.001, end - loop.time())
                lookups = None
                if self.max_lookups is not None:
                    lookups = max(0, self.max_lookups - self._asked())
                out = await self.enricher.enrich(
                    chunk, deadline=left, max_lookups=lookups, **self.kwargs
                )
                self.results += out
                self.writer.write(out)
                if progress is not None:
                    progress.update(task, advance=len(chunk))
        finally:
            if progress is not None:
                progress.stop()
            await self.enricher.aclose()

    def _asked(self) -> int:
        """API lookups made so far: answers that did not come from the cache."""
        asked = {Verdict.SKIPPED, Verdict.QUOTA}
        return sum(1 for r in self.results if not r.cached and r.verdict not in asked)


def _say_unreachable(results: Sequence[Enrichment], settings: config_mod.Settings) -> None:
    """One line, not one per row, when VirusTotal (or the emulator) could not be reached."""
    if not any(r.error == "ConnectionError" for r in results):
        return
    url = settings.virustotal.api_url
    local = "127.0.0.1" in url or "localhost" in url
    hint = "is `vtconnect emulator` running there? " if local else ""
    proxy = f"the proxy {settings.virustotal.proxy}" if settings.virustotal.proxy else "a proxy"
    click.echo(
        f"error: cannot reach VirusTotal at {url}: {hint}check VT_API_URL (or [virustotal] "
        f"api_url) and whether {proxy} is needed ([virustotal] proxy)",
        err=True,
    )


def _credentials_exit(exc: CredentialsRejected) -> None:
    if exc.code == "NoApiKey":  # nothing was sent: a configuration error
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(f"error: VirusTotal rejected the API key ({exc.code}): {exc.message}", err=True)
    sys.exit(EXIT_CREDENTIALS)


# -- scan ------------------------------------------------------------------------------------
@main.group()
def scan() -> None:
    """Submit a URL or a file to VirusTotal for analysis."""


def _run_scan(
    settings: config_mod.Settings, submit, wait: bool, timeout: float, fmt: str
) -> None:
    async def run() -> dict:
        gov = _governor(settings)
        gw = Gateway(settings.virustotal, gov)  # submissions and polls take slots too
        try:
            analysis_id = await submit(gw)
            if not wait:
                return {"analysis_id": analysis_id, "status": "queued"}
            from .core.analysis import wait_for_analysis

            doc = await wait_for_analysis(gw, analysis_id, timeout=timeout)
            return scan_result(analysis_id, doc, settings)
        finally:
            await gw.aclose()
            gov.close()

    try:
        out = asyncio.run(run())
    except CredentialsRejected as exc:
        _credentials_exit(exc)
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
    from .core.enricher import from_report
    from .core.observable import parse
    from .core.report import parse_report

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
    from .core.observable import InvalidObservable, parse

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
    try:
        serve(host, port, config)
    except OSError as exc:  # the port is in use, the address is not ours
        raise ConfigProblem(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


# -- cache and quota -------------------------------------------------------------------------
@main.group()
def cache() -> None:
    """Inspect or empty the verdict cache."""


@cache.command("stats")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
@click.pass_obj
def cache_stats(obj: Ctx, as_json: bool) -> None:
    """Entries by verdict, hit rate, verdict log size."""
    from .core.cache import Cache

    c = Cache(obj.settings.cache_path, obj.settings.cache)
    try:
        stats = c.stats()
    finally:
        c.close()
    stats.pop("memory_entries", None)  # this process's own memory: always empty here
    if as_json:
        click.echo(json.dumps(dict(stats, path=str(obj.settings.cache_path))))
        return
    verdicts = ", ".join(f"{k} {v}" for k, v in sorted(stats["by_verdict"].items())) or "none"
    looked = stats["hits_total"] + stats["misses_total"]
    click.echo(f"cache        {obj.settings.cache_path} ({stats['db_bytes'] / 1024:.0f} KiB)")
    click.echo(f"entries      {stats['entries']} live ({verdicts}); {stats['expired']} expired; "
               f"{stats['aliases']} hash aliases")  # fmt: skip
    click.echo(f"hit rate     {100 * stats['hit_rate']:.1f}% of {looked} lookups; today "
               f"{stats['hits_today']} hits, {stats['misses_today']} misses")  # fmt: skip
    click.echo(f"verdict log  {stats['log_rows']} rows (kept 30 days)")


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
    gov = _governor(obj.settings)
    try:
        status = gov.status()
    finally:
        gov.close()
    tier = obj.settings.quota.tier
    if tier == "auto":
        tier += " (public limits; a local emulator's own tier when the API URL is loopback)"
    click.echo(f"tier {tier}")
    shares = status.pop("shares", {})
    for k, v in status.items():
        click.echo(f"  {k}: {v}")
    if shares:
        click.echo("  shares (reserved per connector today):")
        for name, share in shares.items():
            click.echo(
                f"    {name}: {share['share']:g} = {share['reserved']} reserved, "
                f"{share['used']} used"
            )


def _governor(settings: config_mod.Settings) -> QuotaGovernor:
    per_minute, per_day = settings.quota.limits()
    from .core.ledger import ledger_target

    return QuotaGovernor(
        ledger_target(settings),
        settings.virustotal.api_key.get(),
        per_minute,
        per_day,
        shares=dict(settings.quota.shares),
        tier=settings.quota.tier,
    )


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
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one JSON object per log line (access lines carry their fields as keys).",
)
@click.pass_obj
def serve(obj: Ctx, parts: Sequence[str], log_format: str) -> None:
    """Run the server parts in one process (127.0.0.1 unless configured); stop with SIGTERM.
    /healthz, /metrics and (with [status] credentials) /status on every part."""
    from .observe import configure_logging
    from .serve import plan
    from .serve import serve as run

    chosen = list(dict.fromkeys(parts)) or [
        p for p in ("taxii", "webhook") if p in obj.settings.raw
    ]
    if not chosen:
        raise click.UsageError(
            "nothing to serve: pass --taxii/--webhook or configure [taxii] or [webhook]"
        )
    try:  # the whole configuration is checked before anything is bound
        parts_plan = plan(obj.settings, chosen)
    except config_mod.ConfigError as exc:
        raise ConfigProblem(str(exc)) from None

    configure_logging(log_format)

    def ready(urls: dict) -> None:
        for name, url in urls.items():
            click.echo(f"{name} listening on {url}", err=True)

    try:
        asyncio.run(run(obj.settings, parts_plan, ready))
    except config_mod.ConfigError as exc:  # a store that cannot be opened, a port in use
        raise ConfigProblem(str(exc)) from None


def _register_connectors() -> None:
    from .cli_api import api
    from .cli_config import config_group, init
    from .cli_db import db
    from .cli_lists import lists
    from .cli_splunk import splunk
    from .cli_taxii import taxii
    from .cli_webhook import webhook

    main.add_command(api)
    main.add_command(config_group)
    main.add_command(db)
    main.add_command(init)
    main.add_command(lists)
    main.add_command(splunk)
    main.add_command(taxii)
    main.add_command(webhook)


_register_connectors()

if __name__ == "__main__":  # pragma: no cover
    main()
