"""`vtconnect api token NAME`: a bearer token for a client of the hub (POST /v1/enrich).

Registered by cli.py."""

from __future__ import annotations

import hashlib
import secrets
from typing import Optional

import click

from ..hub.config import PRIORITIES, is_name


@click.group("api")
def api() -> None:
    """The hub's enrichment API (POST /v1/enrich on the webhook port)."""


@api.command("token")
@click.argument("name")
@click.option(
    "--priority",
    type=click.Choice(PRIORITIES),
    default="interactive",
    show_default=True,
    help="The highest priority this client may ask for (higher asks are lowered to it).",
)
@click.option(
    "--daily-share",
    type=click.FloatRange(0, 1),
    default=None,
    help="Part of the daily budget reserved for this client (as [quota.shares]).",
)
def token(name: str, priority: str, daily_share: Optional[float]) -> None:
    """Make a bearer token for the client NAME: the token goes to stderr (shown once, give it
    to the client), the [[api.clients]] block with its SHA-256 to stdout (for vtconnect.toml)."""
    if not is_name(name):
        raise click.BadParameter("letters, digits, '-' or '_' (at most 64)", param_hint="NAME")
    value = secrets.token_urlsafe(32)
    click.echo(f"token for {name} (shown once): {value}", err=True)
    digest = hashlib.sha256(value.encode()).hexdigest()
    block = f'[[api.clients]]\nname = "{name}"\ntoken_sha256 = "{digest}"\npriority = "{priority}"'
    if daily_share is not None:
        block += f"\ndaily_share = {daily_share:g}"
    click.echo(block)
