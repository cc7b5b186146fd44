"""`vtconnect config check` and `vtconnect init`: validate a configuration the way every part
would, print what is in effect (secrets masked), and write a commented starter file.

Registered by cli.py; the commands read the settings from the main group's context object."""

from __future__ import annotations

import dataclasses
import os
import sys
import uuid
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import click

from ..core import config as config_mod

MASK = "********"
# Keys whose values are credentials (or stand for them) wherever they appear.
SECRET_KEYS = {"api_key", "secret", "callback_secret", "password_hash", "sha256", "token",
               "token_sha256"}  # fmt: skip


def _plain(value: Any) -> Any:
    """Settings values as TOML can write them: tuples as lists, no None, secrets masked."""
    if isinstance(value, config_mod.SecretStr):
        return MASK if value else ""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {
            str(k): (MASK if k in SECRET_KEYS and v else _plain(v))
            for k, v in value.items()
            if v is not None
        }
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def effective(settings: config_mod.Settings) -> Dict[str, Any]:
    """The configuration in effect: the core's sections with every default filled in, the other
    parts' sections as written (each was validated by its own loader)."""
    doc: Dict[str, Any] = {"core": {"state_dir": str(settings.state_path)}}
    if settings.database:
        from ..core.database import redacted

        doc["core"]["database"] = redacted(settings.database)
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if dataclasses.is_dataclass(value):
            doc[f.name] = {k: v for k, v in _plain(value).items() if v is not None}
    doc["quota"]["shares"] = dict(settings.quota.shares)  # a table in TOML, not pairs
    for name in (*config_mod.PART_SECTIONS, config_mod.SERVER_SECTION):
        if name in settings.raw:
            doc[name] = _plain(settings.raw[name])
    return doc


def validate_parts(settings: config_mod.Settings) -> None:
    """What `vtconnect serve` checks before binding, for every part that is configured."""
    from ..serve import plan

    present = [p for p in ("taxii", "webhook") if p in settings.raw]
    plan(settings, present)  # each part's whole section, then [api] and [status]
    from ..hub.config import remote

    remote(settings.raw)


@click.group("config")
def config_group() -> None:
    """Check a configuration and show what is in effect."""


@config_group.command("check")
@click.pass_obj
def check(obj: Any) -> None:
    """Validate the configuration as every part would; print the effective configuration with
    secrets masked. Exit 0 when it is usable, 2 with the first problem otherwise."""
    import tomli_w

    settings = obj.settings  # a core error is already a usage error (exit 2) here
    try:
        validate_parts(settings)
    except config_mod.ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"configuration OK: {settings.source or '(defaults: no file)'}", err=True)
    click.echo(tomli_w.dumps(effective(settings)), nl=False)


STARTER = """\
# vtconnect configuration. Every key and its default: examples/vtconnect.toml in the source, or
# the README. Check it with `vtconnect config check --config {path}`.

[core]
# state_dir = "/var/lib/vtconnect"  # cache, quota ledger, stores; default ~/.local/state/vtconnect

[virustotal]
# api_key: prefer the VT_API_KEY environment variable (never printed or logged).
# api_url = "http://127.0.0.1:8642"  # a local `vtconnect emulator`, for trying things out

[quota]
# public: 4 requests/min and 500/day (not licensed for commercial use); premium: your contract.
tier = "{tier}"
{premium}
[privacy]
# Never sent to VirusTotal: names under these suffixes, besides private addresses.
internal_suffixes = [".local", ".internal", ".lan", ".corp", ".home.arpa", ".localhost"]
"""

TAXII = """
# TAXII 2.1 server (`vtconnect serve --taxii`); users: `vtconnect taxii passwd NAME >> {path}`,
# tokens: `vtconnect taxii token NAME >> {path}`.
[taxii]
host = "127.0.0.1"
port = 9443

[[taxii.collections]]
id = "{collection}"
title = "VirusTotal malicious"
read = ["*"]
publish = ["malicious", "suspicious"]
"""

WEBHOOK = """
# Webhook receiver (`vtconnect serve --webhook`): POST /v1/alerts/{{format}}?source=NAME.
# Give the secret below to the sender; more sources: `vtconnect webhook secret NAME`.
[webhook]
host = "127.0.0.1"
port = 9080

{source}
"""


@click.command("init")
@click.argument("path", type=click.Path(dir_okay=False), default="vtconnect.toml")
@click.option("--taxii/--no-taxii", default=None, help="Include the TAXII server (asked if unset).")
@click.option("--webhook/--no-webhook", default=None, help="Include the webhook receiver.")
@click.option(
    "--tier", type=click.Choice(["public", "premium"]), default=None, help="Your API key's tier."
)
@click.option("--force", is_flag=True, help="Overwrite PATH if it exists.")
def init(
    path: str, taxii: Optional[bool], webhook: Optional[bool], tier: Optional[str], force: bool
) -> None:
    """Write a commented starter configuration to PATH (default ./vtconnect.toml)."""
    import base64
    import secrets

    target = Path(path)
    if target.exists() and not force:
        raise click.UsageError(f"{path} exists (use --force to overwrite it)")
    ask = sys.stdin.isatty()
    if tier is None:
        tier = click.prompt("API key tier", type=click.Choice(["public", "premium"]),
                            default="public") if ask else "public"  # fmt: skip
    if taxii is None:
        taxii = click.confirm("Serve a TAXII 2.1 feed?", default=True) if ask else False
    if webhook is None:
        webhook = click.confirm("Receive alerts by webhook?", default=False) if ask else False
    premium = "per_minute = 1000  # your contract's numbers\nper_day = 1000000\n"
    text = STARTER.format(path=path, tier=tier, premium=premium if tier == "premium" else "")
    if taxii:
        text += TAXII.format(path=path, collection=uuid.uuid4())
    if webhook:
        key = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        source = (f'[[webhook.sources]]\nname = "siem"\nformat = "auto"\nauth = "standard"\n'
                  f'secret = "{key}"')  # fmt: skip
        text += WEBHOOK.format(source=source)
    try:
        config_mod.from_mapping(_toml(text), env={})  # what we write must load
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds secrets
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
    except OSError as exc:
        raise click.UsageError(f"cannot write {path}: {exc.strerror}") from None
    click.echo(f"wrote {path}; next: vtconnect config check --config {path}", err=True)


def _toml(text: str) -> Dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    return tomllib.loads(text)
