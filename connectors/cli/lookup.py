"""`vtconnect lookup`: values as arguments, from a file or stdin, or found in free text
(--extract), enriched directly or through a hub (--remote); rows stream out as they complete."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import List, Optional, Sequence

import click
from rich.console import Console

from ..core import config as config_mod
from ..core.enricher import Enricher
from ..core.gateway import CredentialsRejected
from ..core.quota import Priority
from ..core.verdict import Enrichment, Verdict
from . import render
from .context import EXIT_FAILED, EXIT_INTERRUPTED, MAX_LINE, ConfigProblem, Ctx, credentials_exit


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


@click.command()
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
    from ..hub.config import remote as remote_settings

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
        from .remote import remote_lookup

        alone = {
            "--no-cache": no_cache,
            "--rescan-after-days": rescan_after_days is not None,
            "--max-lookups": max_lookups is not None,
            "--format stix": fmt == "stix",
        }
        for option, given in alone.items():
            if given:
                raise click.UsageError(f"{option} needs a direct lookup, not --remote")
        writer = render.RowWriter(fmt, sys.stdout, Console())
        remote_lookup(remote, items, kind, priority, deadline, writer)
        return
    try:
        enricher = Enricher(settings, connector="cli")
    except config_mod.ConfigError as exc:  # the shared database: unreachable, schema too new
        raise ConfigProblem(str(exc)) from None
    kwargs = dict(
        kind=kind,
        use_cache=not no_cache,
        rescan_after_days=rescan_after_days,
        priority=Priority[priority.upper()],
    )
    writer = render.RowWriter(fmt, sys.stdout, Console())
    run = LookupRun(enricher, items, kwargs, deadline, max_lookups, writer)
    interrupted = False
    try:
        asyncio.run(run.go(console))
    except KeyboardInterrupt:
        interrupted = True
    except CredentialsRejected as exc:
        writer.close()
        credentials_exit(exc)
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
    from ..core.extract import extract
    from ..core.observable import Kind

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
                 writer: render.RowWriter) -> None:  # fmt: skip
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
