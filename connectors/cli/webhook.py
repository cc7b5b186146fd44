"""`vtconnect webhook ...`: dead letters (list, replay) and test signatures for a source.

Registered by cli.py with `main.add_command(webhook)`; the commands read the settings from the
main group's context object (anything with a `.settings` property)."""

from __future__ import annotations

import hashlib
import hmac
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Optional

import click

from ..core.config import ConfigError

EXIT_FAILED = 1


def _config(obj: Any) -> Any:
    from ..webhook.config import load

    try:
        return load(obj.settings.raw)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


def _outbox(obj: Any) -> Any:
    from ..webhook.outbox import outbox_for

    cfg = _config(obj)
    try:
        return outbox_for(obj.settings, cfg)
    except ConfigError as exc:  # a database it cannot use: one line
        raise click.UsageError(str(exc)) from None


@click.group()
def webhook() -> None:
    """Webhook receiver helpers."""


@webhook.command("replay")
@click.option("--job", "job_id", help="One dead-lettered job; default: all of them.")
@click.pass_obj
def replay(obj: Any, job_id: Optional[str]) -> None:
    """Queue dead-lettered callbacks again (the running receiver sends them)."""
    outbox = _outbox(obj)
    try:
        n = outbox.replay(job_id)
    finally:
        outbox.close()
    click.echo(f"{n} callback(s) queued again")
    if job_id and not n:
        sys.exit(EXIT_FAILED)


@webhook.command("dead")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.pass_obj
def dead(obj: Any, limit: int) -> None:
    """List dead-lettered callbacks: job id, source, attempts, last error."""
    outbox = _outbox(obj)
    try:
        rows = outbox.dead_letters(limit)
    finally:
        outbox.close()
    for r in rows:
        click.echo(f"{r['id']}\t{r['source']}\t{r['attempts']}\t{r['last_error']}")
    click.echo(f"{len(rows)} dead letter(s)", err=True)


@webhook.command("sign")
@click.argument("source")
@click.argument("body_file", type=click.Path(allow_dash=True), default="-")
@click.option("--id", "msg_id", default=None, help="webhook-id (default: a new msg_<uuid>).")
@click.pass_obj
def sign(obj: Any, source: str, body_file: str, msg_id: Optional[str]) -> None:
    """Headers that sign BODY_FILE (default stdin) for SOURCE, one `Name: value` per line, for
    `curl -H`. Only for signing schemes (standard, github): other schemes carry the secret
    itself, which this command never prints."""
    from ..webhook.auth import sign_standard

    cfg = _config(obj)
    src = cfg.sources.get(source)
    if src is None:
        raise click.UsageError(
            f"no source {source!r} in [webhook] (have: {', '.join(cfg.sources)})"
        )
    try:
        body = sys.stdin.buffer.read() if body_file == "-" else Path(body_file).read_bytes()
    except OSError as exc:
        raise click.BadParameter(f"cannot read {body_file}: {exc.strerror}") from None
    if src.auth == "standard":
        msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
        stamp = int(time.time())
        try:
            signature = sign_standard(src.secret, msg_id, stamp, body)
        except ValueError:
            raise click.UsageError(f"{source}: the secret is not whsec_<base64>") from None
        click.echo(f"webhook-id: {msg_id}")
        click.echo(f"webhook-timestamp: {stamp}")
        click.echo(f"webhook-signature: {signature}")
    elif src.auth == "github":
        digest = hmac.new(src.secret.encode(), body, hashlib.sha256).hexdigest()
        click.echo(f"X-Hub-Signature-256: sha256={digest}")
    else:
        raise click.UsageError(
            f"{source} uses auth = {src.auth!r}: nothing to sign (only standard and github)"
        )


@webhook.command("secret")
@click.argument("name")
@click.option(
    "--auth",
    type=click.Choice(["standard", "github", "bearer", "header", "url"]),
    default="standard",
    show_default=True,
    help="How the sender proves itself (see the README's webhook section).",
)
@click.option("--format", "fmt", default="auto", show_default=True, help="Alert format.")
def secret(name: str, auth: str, fmt: str) -> None:
    """Print a [[webhook.sources]] block for NAME with a new random secret: paste it into
    vtconnect.toml and give the same secret to the sender (it verifies or signs with it)."""
    import base64
    import secrets

    from ..webhook.formats import FORMATS

    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise click.BadParameter("letters, digits, '-' or '_'", param_hint="NAME")
    if fmt not in FORMATS:
        raise click.BadParameter(f"one of {', '.join(FORMATS)}", param_hint="--format")
    if auth == "standard":  # Standard Webhooks: whsec_ + base64 of the key bytes
        value = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    else:
        value = secrets.token_urlsafe(32)
    click.echo(
        f'[[webhook.sources]]\nname = "{name}"\nformat = "{fmt}"\nauth = "{auth}"\n'
        f'secret = "{value}"'
    )
