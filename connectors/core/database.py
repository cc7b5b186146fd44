"""PostgreSQL, the one database that several `vtconnect serve` replicas share: connections and
versioned schemas. psycopg is imported only here and only when a PostgreSQL URL is configured,
so SQLite users (and Splunk's Python 3.9) never need it.

Each store that can live in PostgreSQL declares a `Schema`: a component name and its migrations
(version N = the first N scripts applied). The installed versions live in the database itself
(table vtconnect_schema), so every replica sees the same ones. Upgrades run in one transaction
under an advisory lock: two replicas starting together apply each script once. Code that finds
a schema newer than it knows refuses it (SchemaTooNew) rather than misread the rows.

Each store whose state can move from its SQLite file to PostgreSQL also registers a `Copyable`
(`copyable(...)`, beside its Schema): the file it keeps in state_dir and which SQLite table fills
which PostgreSQL table. `vtconnect db copy` reads this registry; a store adds itself by
registering, nothing else needs to know it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple, Union
from urllib.parse import urlsplit, urlunsplit

from .config import ConfigError

SCHEMA_LOCK = 0x7674_0001  # advisory lock key held while a schema is created or upgraded
VERSIONS_TABLE = """
CREATE TABLE IF NOT EXISTS vtconnect_schema (
    component TEXT PRIMARY KEY, version INTEGER NOT NULL,
    updated TIMESTAMPTZ NOT NULL DEFAULT now())
"""


class SchemaError(ConfigError):
    """The database schema cannot be used by this vtconnect; the message says what to do."""


class SchemaTooNew(SchemaError):
    pass


@dataclass(frozen=True)
class Schema:
    component: str  # "taxii", "webhook", ...
    migrations: Tuple[str, ...]  # SQL scripts, oldest first; never edit one that has shipped

    @property
    def version(self) -> int:
        return len(self.migrations)


@dataclass(frozen=True)
class CopyTable:
    """One SQLite table moved into one PostgreSQL table by `vtconnect db copy`."""

    source: str  # the SQLite table; missing in an older file = nothing to copy
    target: str  # the PostgreSQL table
    columns: Tuple[str, ...] = ()  # the target's columns, in the order `select` gives them;
    # () = the source's columns, by name
    select: str = ""  # a SQLite SELECT giving `columns`; "" = those names from `source`
    convert: Optional[Callable[[Tuple[Any, ...]], Tuple[Any, ...]]] = None  # per row, where a
    # value is spelled otherwise in PostgreSQL (text holds no NUL)

    def query(self, columns: Tuple[str, ...]) -> str:
        return self.select or f"SELECT {', '.join(columns)} FROM {self.source}"


@dataclass(frozen=True)
class Copyable:
    """A component's SQLite file and the tables `vtconnect db copy` moves from it."""

    component: str  # the Schema's component: its tables are created before the copy
    file: str  # the file's name in state_dir ("taxii.db")
    tables: Tuple[CopyTable, ...]
    setting: str = ""  # a dotted setting that may name another path ("taxii.store")
    prepare: Optional[Callable[[Path], None]] = None  # opens the file as its store does (an
    # older file is upgraded) before it is read
    finish: Tuple[str, ...] = ()  # PostgreSQL statements run after the rows are in (e.g. a
    # sequence moved past the copied ids), in the copy's transaction
    transient: Tuple[str, ...] = ()  # the component's PostgreSQL tables deliberately not
    # copied (state that means nothing once its processes are gone: in-flight leases)


COPYABLE: Dict[str, Copyable] = {}  # component -> what `vtconnect db copy` moves for it


def copyable(spec: Copyable) -> Copyable:
    """Register (or replace) a component's copy; returns it, to keep beside the Schema."""
    COPYABLE[spec.component] = spec
    return spec


def is_postgres(target: Union[str, Path, None]) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def redacted(url: str) -> str:
    """The URL with its password (if any) masked, for messages and `vtconnect config check`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":********@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise ConfigError(
            "core.database is a PostgreSQL URL but psycopg is not installed: "
            "pip install 'vtconnect[postgres]'"
        ) from None
    return psycopg


def connect(url: str) -> Any:
    """One autocommit connection (transactions are explicit: `with conn.transaction()`)."""
    psycopg = _psycopg()
    try:
        return psycopg.connect(url, autocommit=True)
    except psycopg.Error as exc:
        raise ConfigError(f"cannot connect to core.database: {_one_line(exc)}") from None


async def connect_async(url: str, **params: Any) -> Any:
    """One autocommit asyncio connection: a session of its own (session locks, LISTEN), its
    libpq `params` added to the URL's. Failures raise the driver's own errors (`Error`)."""
    return await _psycopg().AsyncConnection.connect(url, autocommit=True, **params)


def driver_error() -> type:
    """The driver's base exception class, for callers that keep a session alive themselves."""
    return _psycopg().Error


def pool(
    url: str, max_size: int = 4, session: Tuple[str, ...] = (), schema: Optional[Schema] = None
) -> Any:
    """A small thread-safe pool of autocommit connections, opened and checked now; `session`
    statements (SET ...) run once on every new connection; `schema` is created or upgraded
    before the pool is handed out (the pool is closed again when that fails)."""
    psycopg = _psycopg()
    from psycopg_pool import ConnectionPool, PoolTimeout

    connect(url).close()  # fails fast with the server's own message (the pool would retry)
    def configure(conn: Any) -> None:
        for statement in session:
            conn.execute(statement)

    p = ConnectionPool(
        url, min_size=1, max_size=max_size, kwargs={"autocommit": True}, open=False, timeout=10,
        configure=configure,
    )  # fmt: skip
    try:
        p.open(wait=True, timeout=10)
    except (PoolTimeout, psycopg.Error) as exc:
        p.close()
        raise ConfigError(f"cannot connect to core.database: {_one_line(exc)}") from None
    if schema is not None:
        try:
            with p.connection() as conn:
                ensure(conn, schema)
        except BaseException:
            p.close()
            raise
    return p


def unavailable_errors() -> Tuple[type, ...]:
    """The exceptions that mean the database cannot be reached now (down, restarting, the
    pool found no connection in time), as opposed to a statement that is wrong."""
    psycopg = _psycopg()
    from psycopg_pool import PoolTimeout

    return (psycopg.OperationalError, PoolTimeout)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def installed_versions(conn: Any) -> Dict[str, int]:
    """{component: version} as recorded in the database ({} for an empty database)."""
    row = conn.execute("SELECT to_regclass('vtconnect_schema')").fetchone()
    if row[0] is None:
        return {}
    return dict(conn.execute("SELECT component, version FROM vtconnect_schema").fetchall())


def check(conn: Any, schema: Schema) -> int:
    """The installed version; SchemaTooNew when it is newer than this code knows."""
    have = installed_versions(conn).get(schema.component, 0)
    if have > schema.version:
        raise SchemaTooNew(
            f"database schema for {schema.component} is version {have}, newer than this "
            f"vtconnect knows ({schema.version}): upgrade vtconnect"
        )
    return have


def ensure(conn: Any, schema: Schema) -> Tuple[int, int]:
    """Create or upgrade one component's tables; (version before, version now)."""
    if check(conn, schema) == schema.version:  # the common case: no lock taken
        return schema.version, schema.version
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        conn.execute(VERSIONS_TABLE)
        have = check(conn, schema)  # again, under the lock: another replica may have done it
        for script in schema.migrations[have:]:
            conn.execute(script)
        conn.execute(
            "INSERT INTO vtconnect_schema (component, version) VALUES (%s, %s) "
            "ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version, updated = now()",
            (schema.component, schema.version),
        )
    return have, schema.version
