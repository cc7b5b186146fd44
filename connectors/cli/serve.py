"""`vtconnect serve`: the server parts in one process, through the composition root
(connectors/serve.py)."""

from __future__ import annotations

import asyncio
from typing import Sequence

import click

from ..core import config as config_mod
from .context import ConfigProblem, Ctx


@click.command()
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
    from ..observe import configure_logging
    from ..serve import plan
    from ..serve import serve as run

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
