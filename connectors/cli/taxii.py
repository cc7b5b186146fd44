"""`vtconnect taxii ...`: passwd (a hash for [[taxii.users]]), pull (a remote TAXII 2.1 feed into
a local collection, optionally enriched) and push (a local collection to a remote server).

Registered by cli.py with `main.add_command(taxii)`; the commands read the settings from the
main group's context object (anything with a `.settings` property)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import Any, Dict, Iterator, Optional

import click

from ..core.config import ConfigError

EXIT_FAILED, EXIT_USAGE, EXIT_CREDENTIALS = 1, 2, 3


def _local(obj: Any) -> Any:
    """The [taxii] configuration and its store."""
    from taxii import config as taxii_config
    from taxii.store import store_for

    try:
        cfg = taxii_config.load(obj.settings.raw)
        return cfg, store_for(obj.settings, cfg.store)  # a database it cannot use: one line
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


def _local_collection(cfg: Any, wanted: Optional[str], option: str) -> str:
    """A local collection by id or title; without one, the only configured collection."""
    if wanted is None:
        if len(cfg.collections) == 1:
            return str(cfg.collections[0].id)
        raise click.UsageError(f"{option} is required when [taxii] has several collections")
    for c in cfg.collections:
        if wanted in (c.id, c.title):
            return str(c.id)
    raise click.BadParameter(f"no local collection {wanted!r} in [taxii]", param_hint=option)


def _credentials(user: Optional[str], password: Optional[str], token: Optional[str]) -> Dict:
    if password and not user:
        raise click.UsageError("--password needs --user")
    if user and not password:
        password = click.prompt(f"Password for {user}", hide_input=True)
    return {"user": user, "password": password, "token": token}


@contextlib.contextmanager
def _remote_errors(action: str, store: Any) -> Iterator[None]:
    """A remote that is not what the command needs is a usage error; network, auth and server
    errors from taxii2-client/requests are one line and exit 1. The store is closed either way."""
    from connectors.core.gateway import CredentialsRejected
    from taxii import client

    try:
        yield
    except client.PullError as exc:
        raise click.UsageError(str(exc)) from None
    except click.ClickException:
        raise
    except CredentialsRejected as exc:  # --enrich: our key, not the remote (exit codes of cli.py)
        if exc.code == "NoApiKey":
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(EXIT_USAGE)
        click.echo(f"error: VirusTotal rejected the API key ({exc.code}): {exc.message}", err=True)
        sys.exit(EXIT_CREDENTIALS)
    except Exception as exc:
        click.echo(f"{action} failed: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    finally:
        store.close()


def _done(counts: Dict[str, int]) -> None:
    click.echo(" ".join(f"{k}={v}" for k, v in counts.items()))


@click.group()
def taxii() -> None:
    """TAXII 2.1: password hashes, pulling and pushing feeds."""


def _user_name(user: str) -> str:
    if not user.strip() or '"' in user or "\\" in user or "\n" in user:
        raise click.BadParameter("a user name without quotes or backslashes", param_hint="USER")
    return user


@taxii.command("passwd")
@click.argument("user")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)
def passwd(user: str, password_stdin: bool) -> None:
    """Print a [[taxii.users]] block with a password hash for USER.

    The password is asked at a prompt (twice) or read from stdin, never from the command line
    (visible in `ps`); only its hash is printed."""
    from taxii.config import hash_password

    _user_name(user)
    if password_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt(
            "Password for the TAXII user", hide_input=True, confirmation_prompt=True
        )
    if not password:
        raise click.UsageError("the password is empty")
    click.echo(f'[[taxii.users]]\nname = "{user}"\npassword_hash = "{hash_password(password)}"')


@taxii.command("token")
@click.argument("user")
def token(user: str) -> None:
    """Make a bearer token for USER: the token goes to stderr (shown once, give it to the
    client), the [[taxii.tokens]] block with its SHA-256 to stdout (for vtconnect.toml)."""
    import hashlib
    import secrets

    _user_name(user)
    value = secrets.token_urlsafe(32)
    click.echo(f"token for {user} (shown once): {value}", err=True)
    digest = hashlib.sha256(value.encode()).hexdigest()
    click.echo(f'[[taxii.tokens]]\nsha256 = "{digest}"\nuser = "{user}"')


remote = [
    click.argument("url"),
    click.option("--collection", required=True, help="Remote collection id or title."),
    click.option(
        "--user", help="HTTP Basic user (password from --password, the prompt or $TAXII_PASSWORD)."
    ),
    click.option("--password", envvar="TAXII_PASSWORD", help="Or $TAXII_PASSWORD."),
    click.option("--token", envvar="TAXII_TOKEN", help="Bearer token, or $TAXII_TOKEN."),
]


def _remote(fn: Any) -> Any:
    for decorate in reversed(remote):
        fn = decorate(fn)
    return fn


@taxii.command("pull")
@_remote
@click.option("--enrich/--no-enrich", default=False, help="Add VirusTotal's opinion.")
@click.option("--into", "into", help="Local collection id or title (default: the only one).")
@click.pass_obj
def pull(
    obj: Any,
    url: str,
    collection: str,
    user: Optional[str],
    password: Optional[str],
    token: Optional[str],
    enrich: bool,
    into: Optional[str],
) -> None:
    """Fetch what is new in a remote TAXII 2.1 collection (URL: discovery, API root or
    collection URL) into a local collection; `added_after` is remembered between runs."""
    from connectors.core.enricher import Enricher
    from connectors.core.lists import matcher
    from taxii import client

    creds = _credentials(user, password, token)
    cfg, store = _local(obj)
    with _remote_errors("pull", store):
        target = _local_collection(cfg, into, "--into")

        async def run() -> Dict[str, int]:
            enricher = Enricher(obj.settings, connector="taxii-pull") if enrich else None
            try:
                lists = matcher(obj.settings.lists)  # ignored values are never stored
                return await client.pull(
                    store, enricher, url, collection, target, tlp=cfg.tlp, lists=lists, **creds
                )
            finally:
                if enricher is not None:
                    await enricher.aclose()
                    enricher.close()

        counts = asyncio.run(run())
    _done(counts)


@taxii.command("push")
@_remote
@click.option("--from", "source", help="Local collection id or title (default: the only one).")
@click.option("--all", "resend", is_flag=True, help="Send everything, not only what is new.")
@click.pass_obj
def push(
    obj: Any,
    url: str,
    collection: str,
    user: Optional[str],
    password: Optional[str],
    token: Optional[str],
    source: Optional[str],
    resend: bool,
) -> None:
    """Send a local collection to a remote TAXII 2.1 collection (add_objects in batches,
    following each status); only what is new since the last push unless --all."""
    from taxii import client

    creds = _credentials(user, password, token)
    cfg, store = _local(obj)
    with _remote_errors("push", store):
        target = _local_collection(cfg, source, "--from")
        counts = client.push(store, url, collection, target, resend=resend, **creds)
    _done(counts)
    if counts["failed"]:
        sys.exit(EXIT_FAILED)
