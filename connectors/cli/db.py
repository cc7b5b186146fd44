"""`vtconnect db init|upgrade|status`: the schema of the shared PostgreSQL database
([core] database / VTCONNECT_DATABASE). SQLite files need none of this: they are created and
upgraded by the process that opens them. `vtconnect db copy` moves a host's SQLite state into
that database, for every store registered with `database.copyable`.

Registered by cli.py with `main.add_command(db)`; the commands read the settings from the main
group's context object (anything with a `.settings` property)."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, NoReturn, Optional, Tuple, TypeVar

import click

from ..core import database
from ..core.config import ConfigError

EXIT_FAILED, EXIT_USAGE = 1, 2
T = TypeVar("T")


def schemas() -> List[database.Schema]:
    """Every component that keeps its state in the shared database, in creation order."""
    from taxii.store.postgres import SCHEMA as TAXII

    from ..core.ledger.postgres import SCHEMA as QUOTA
    from ..core.store.postgres import SCHEMA as CACHE
    from ..webhook.outbox.postgres import SCHEMA as WEBHOOK

    return [CACHE, TAXII, WEBHOOK, QUOTA]


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
    """The shared PostgreSQL database ([core] database): its schema, and a host's SQLite state
    copied into it."""


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


COPY_BATCH = 5000  # rows read from SQLite at a time


def _source(settings: Any, spec: database.Copyable, from_dir: Optional[str]) -> Path:
    """The component's SQLite file: in --from DIR by its default name, else where this
    configuration keeps it (its own path setting, else state_dir)."""
    if from_dir:
        return Path(from_dir).expanduser() / spec.file
    value: Any = settings.raw
    for part in spec.setting.split(".") if spec.setting else []:
        value = value.get(part, "") if isinstance(value, dict) else ""
    return Path(value).expanduser() if isinstance(value, str) and value else (
        settings.state_path / spec.file
    )  # fmt: skip


def _sqlite_tables(db: sqlite3.Connection) -> set:
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _copy_table(conn: Any, db: sqlite3.Connection, table: database.CopyTable) -> int:
    if table.source not in _sqlite_tables(db):  # an older file never made it: nothing to copy
        return 0
    columns = table.columns or tuple(
        r[1] for r in db.execute(f"SELECT * FROM pragma_table_info('{table.source}')")
    )
    rows = db.execute(table.query(columns))
    n = 0
    with conn.cursor().copy(f"COPY {table.target} ({', '.join(columns)}) FROM STDIN") as cp:
        while True:
            batch = rows.fetchmany(COPY_BATCH)
            if not batch:
                break
            for row in batch:
                cp.write_row(table.convert(row) if table.convert else row)
            n += len(batch)
    return n


@db.command(name="copy")
@click.option(
    "--from",
    "from_dir",
    type=click.Path(file_okay=False),
    help="A state directory to copy from (default: this configuration's SQLite files, in "
    "core.state_dir unless a store names its own path).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Copy into tables that already hold rows, emptying them first (their rows are lost).",
)
@click.pass_obj
def copy_command(obj: Any, from_dir: Optional[str], force: bool) -> None:
    """Copy this host's SQLite state (TAXII objects, webhook jobs, ...) into the PostgreSQL
    database, in one transaction. Stop the servers that write those files first."""
    settings = obj.settings
    if not settings.database:
        _fail("core.database is not set: it names the PostgreSQL database to copy into")
    found: List[Tuple[database.Schema, database.Copyable, Path]] = []
    for schema in schemas():
        spec = database.COPYABLE.get(schema.component)
        if spec is None:
            continue
        path = _source(settings, spec, from_dir)
        if path.is_file():
            found.append((schema, spec, path))
        else:
            click.echo(f"{spec.component}: no {path}, nothing to copy")
    if not found:
        _fail("no SQLite state to copy")
    files: Dict[str, sqlite3.Connection] = {}
    try:
        for _, spec, path in found:
            _open_ro(path).close()  # first: a store moves a file it cannot read aside
            if spec.prepare is not None:
                spec.prepare(path)
            files[spec.component] = _open_ro(path)
        counts = _with_db(obj, lambda conn: _copy(conn, found, files, force))
    except (OSError, sqlite3.Error) as exc:
        _fail(f"cannot read the SQLite state: {exc}")
    except Exception as exc:  # a row PostgreSQL refuses: the transaction rolled back
        if not type(exc).__module__.startswith("psycopg"):
            raise
        _fail(f"copy failed, nothing was copied: {database._one_line(exc)}")
    finally:
        for f in files.values():
            f.close()
    for what, n in counts.items():
        click.echo(f"{what}: {n} row{'' if n == 1 else 's'}")
    click.echo(f"copied {sum(counts.values())} rows into {database.redacted(settings.database)}")


def _copy(
    conn: Any,
    found: List[Tuple[database.Schema, database.Copyable, Path]],
    files: Dict[str, sqlite3.Connection],
    force: bool,
) -> Dict[str, int]:
    for schema, _, _ in found:
        database.ensure(conn, schema)  # a fresh database needs no `db init` first
    targets = [t.target for _, spec, _ in found for t in spec.tables]
    full = [t for t in targets if conn.execute(f"SELECT EXISTS (SELECT 1 FROM {t})").fetchone()[0]]
    if full and not force:
        _fail(f"the database already holds rows in {', '.join(full)}: pass --force to replace them")
    counts: Dict[str, int] = {}
    with conn.transaction():
        if full:
            conn.execute(f"TRUNCATE {', '.join(targets)}")
        for _, spec, _ in found:
            for table in spec.tables:
                what = f"{spec.component}: {table.source} -> {table.target}"
                counts[what] = _copy_table(conn, files[spec.component], table)
            for statement in spec.finish:
                conn.execute(statement)
    return counts


def _open_ro(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    db.execute("SELECT count(*) FROM sqlite_master").fetchone()  # not a database: fails here
    return db
