"""`vtconnect quota`: the API budget used and left, and the quota governor the commands that
call VirusTotal directly share."""

from __future__ import annotations

import click

from ..core import config as config_mod
from ..core.ledger import ledger_target
from ..core.quota import QuotaGovernor
from .context import Ctx


@click.command()
@click.pass_obj
def quota(obj: Ctx) -> None:
    """Show the API budget used and left for the configured key."""
    gov = governor(obj.settings)
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


def governor(settings: config_mod.Settings) -> QuotaGovernor:
    per_minute, per_day = settings.quota.limits()
    return QuotaGovernor(
        ledger_target(settings),  # [core] database: the budget every host shares
        settings.virustotal.api_key.get(),
        per_minute,
        per_day,
        shares=dict(settings.quota.shares),
        tier=settings.quota.tier,
    )
