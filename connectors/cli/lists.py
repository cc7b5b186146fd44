"""`vtconnect lists ...`: which [lists] rule decides for a value.

Registered by cli.py with `main.add_command(lists)`; the commands read the settings from the
main group's context object (anything with a `.settings` property)."""

from __future__ import annotations

import sys
from typing import Any

import click

from ..core.lists import matcher
from ..core.observable import KIND_CHOICES, InvalidObservable, parse

EXIT_NO_MATCH, EXIT_USAGE = 1, 2


@click.group()
def lists() -> None:
    """The [lists] section: values never looked up, verdicts analysts have fixed."""


@lists.command("check")
@click.argument("value")
@click.option(
    "--type",
    "kind",
    default="auto",
    show_default=True,
    type=click.Choice(KIND_CHOICES),
    help="Treat VALUE as this kind.",
)
@click.pass_obj
def check(obj: Any, value: str, kind: str) -> None:
    """Say which rule matches VALUE (exit 0), or that none does (exit 1)."""
    try:
        obs = parse(value, kind)
    except InvalidObservable as exc:
        click.echo(f"error: {value[:100]!r} is not an indicator: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    rule = matcher(obj.settings.lists).match(obs)
    if rule is None:
        click.echo(f"{obs.value}: no [lists] rule matches")
        sys.exit(EXIT_NO_MATCH)
    click.echo(f"{obs.value}: {rule.verdict.value}: {rule.reason}")
