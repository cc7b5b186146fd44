"""`vtconnect db init|upgrade|status`: the schema of the shared PostgreSQL database
([core] database / VTCONNECT_DATABASE). SQLite files need none of this: they are created and
upgraded by the process that opens them.

Registered by cli.py with `main.add_command(db)`; the commands read the settings from the main
group's context object (anything with a `.settings` property)."""

from __future__ import annotations

import sys
from typing import Any, Callable, List, NoReturn, TypeVar

import click

from ..core import database
from ..core.config import ConfigError

EXIT_FAILED, EXIT_USAGE = 1, 2
T = TypeVar("T")


def schemas() -> List[database.Schema]:
    """Every component that keeps its state in the shared database, in creation order."""
    from taxii.store.postgres import SCHEMA as TAXII

    from ..core.store.postgres import SCHEMA as CACHE
    from ..webhook.outbox.postgres import SCHEMA as WEBHOOK

    return [CACHE, TAXII, WEBHOOK]


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def _with_db(obj: Any, fn: Callable[[Any], T]) -> T:
    try:
        url = obj.settings.database
        if not url:
            _fail("core.database is not set (SQLite state needs no schema commands)")
        conn = database.connect(url)
        try:
            return fn(conn)
        finally:
            conn.close()
    except ConfigError as exc:  # unreachable database, a schema newer than this vtconnect
        _fail(str(exc))


@click.group()
def db() -> None:
    """The schema of the shared PostgreSQL database ([core] database)."""


@db.command()
@click.pass_obj
def init(obj: Any) -> None:
    """Create the tables of every component not in the database yet."""

    def run(conn: Any) -> None:
        installed = database.installed_versions(conn)
        for schema in schemas():
            have = installed.get(schema.component, 0)
            if have:
                database.check(conn, schema)
                hint = "" if have == schema.version else "; `vtconnect db upgrade` brings it up"
                click.echo(f"{schema.component}: already at version {have}{hint}")
                continue
            database.ensure(conn, schema)
            click.echo(f"{schema.component}: created at version {schema.version}")

    _with_db(obj, run)


@db.command()
@click.pass_obj
def upgrade(obj: Any) -> None:
    """Apply the migrations this vtconnect knows (creating missing components too)."""

    def run(conn: Any) -> None:
        for schema in schemas():
            before, now = database.ensure(conn, schema)
            change = f"{before} -> {now}" if before != now else f"up to date (version {now})"
            click.echo(f"{schema.component}: {change}")

    _with_db(obj, run)


@db.command()
@click.pass_obj
def status(obj: Any) -> None:
    """Installed and known schema versions; exit 1 unless every component is current."""

    def run(conn: Any) -> bool:
        installed = database.installed_versions(conn)
        current = True
        click.echo(f"{'component':<12} {'installed':>9} {'known':>6}  state")
        for schema in schemas():
            have = installed.get(schema.component, 0)
            if have == schema.version:
                state = "current"
            elif have > schema.version:
                state = "newer than this vtconnect: upgrade vtconnect"
            else:
                state = "missing: vtconnect db init" if not have else "vtconnect db upgrade"
            current = current and have == schema.version
            click.echo(f"{schema.component:<12} {have:>9} {schema.version:>6}  {state}")
        return current

    if not _with_db(obj, run):
        sys.exit(EXIT_FAILED)
