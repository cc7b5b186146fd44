"""`vtconnect emulator`: the VirusTotal API v3 emulator on a local port."""

from __future__ import annotations

from typing import Sequence

import click

from .context import ConfigProblem


@click.command()
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
    from ..emulator.cli_support import build_config
    from ..emulator.server import serve

    try:
        config = build_config(tier=tier, keys=keys, strict_keys=strict_keys, faults=faults)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        serve(host, port, config)
    except OSError as exc:  # the port is in use, the address is not ours
        raise ConfigProblem(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
