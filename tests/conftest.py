"""Shared fixtures: a real emulator on an ephemeral loopback port, and settings pointing at it."""

from __future__ import annotations

import os

# Imported up front: when hypothesis is first imported by its plugin at session end, CPython
# 3.11.7 can fail compiling it ("AST constructor recursion depth mismatch").
import hypothesis  # noqa: F401
import pytest

from connectors.core import config
from connectors.emulator.server import EmulatorThread


@pytest.fixture(scope="session")
def emulator_url():
    """One emulator for the session, in its own thread and event loop (default config:
    any key accepted, no quota). Tests that change faults or tiers start their own."""
    emu = EmulatorThread()
    url = emu.start()
    yield url
    emu.stop()


@pytest.fixture
def settings(emulator_url, tmp_path):
    # No local quota: tests about the quota make their own settings.
    doc = {"quota": {"tier": "unlimited"}}
    return config.for_emulator(config.from_mapping(doc, env={}), emulator_url, str(tmp_path))


@pytest.fixture(scope="session")
def pg_url():
    """A real PostgreSQL server for the session (tests/pg.py); fails loudly when it cannot
    start, skips only when VTCONNECT_TEST_POSTGRES=0 says so."""
    from tests import pg

    reason = pg.disabled_reason()
    if reason:
        pytest.skip(reason)
    external = os.environ.get(pg.ENV, "").strip()
    if external.startswith(("postgresql://", "postgres://")):
        yield external
        return
    server = pg.PostgresServer()
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
def pg_database(pg_url):
    """A database URL of its own for one test: a fresh schema on the session's server."""
    import psycopg

    from tests import pg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        url = pg.fresh_schema(conn, pg_url)
    yield url
    with psycopg.connect(url, autocommit=True) as conn:
        (schema,) = conn.execute("SELECT current_schema()").fetchone()
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
