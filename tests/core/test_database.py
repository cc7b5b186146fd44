"""Versioned schemas in a real PostgreSQL (tests/pg.py): created once, upgraded in order, never
twice under concurrent starts, and a schema newer than the code is refused."""

from __future__ import annotations

import threading

import pytest

from connectors.core import database
from connectors.core.config import ConfigError

V1 = "CREATE TABLE things (id TEXT PRIMARY KEY)"  # no IF NOT EXISTS: running twice fails
V2 = "ALTER TABLE things ADD COLUMN note TEXT NOT NULL DEFAULT ''"
SCHEMA = database.Schema("things", (V1, V2))


def test_create_upgrade_and_status(pg_database):
    conn = database.connect(pg_database)
    try:
        assert database.installed_versions(conn) == {}
        assert database.ensure(conn, database.Schema("things", (V1,))) == (0, 1)
        assert database.installed_versions(conn) == {"things": 1}
        assert database.ensure(conn, SCHEMA) == (1, 2)
        assert database.ensure(conn, SCHEMA) == (2, 2)  # nothing to do
        conn.execute("INSERT INTO things (id) VALUES ('a')")
        assert conn.execute("SELECT note FROM things").fetchone() == ("",)
    finally:
        conn.close()


def test_a_newer_schema_is_refused(pg_database):
    conn = database.connect(pg_database)
    try:
        database.ensure(conn, SCHEMA)
        older = database.Schema("things", (V1,))
        with pytest.raises(database.SchemaTooNew, match="version 2, newer than .* knows \\(1\\)"):
            database.ensure(conn, older)
        with pytest.raises(database.SchemaTooNew):
            database.check(conn, older)
    finally:
        conn.close()


def test_concurrent_starts_apply_each_script_once(pg_database):
    errors: list = []

    def start() -> None:
        conn = database.connect(pg_database)
        try:
            database.ensure(conn, SCHEMA)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    conn = database.connect(pg_database)
    assert database.installed_versions(conn) == {"things": 2}
    conn.close()


def test_an_unreachable_database_is_a_one_line_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot connect to core.database") as info:
        database.connect(f"postgresql://nobody@/x?host={tmp_path}&connect_timeout=2")
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="cannot connect"):
        database.pool(f"postgresql://nobody@/x?host={tmp_path}&connect_timeout=2")


def test_is_postgres():
    assert database.is_postgres("postgresql://h/db") and database.is_postgres("postgres://h/d")
    assert not database.is_postgres("/var/lib/x.db") and not database.is_postgres(None)


def test_passwords_are_redacted():
    url = "postgresql://vtc:s3cret@db.example:5432/vtconnect?sslmode=require"
    assert database.redacted(url) == (
        "postgresql://vtc:********@db.example:5432/vtconnect?sslmode=require"
    )
    assert database.redacted("postgresql://vtc@db/x") == "postgresql://vtc@db/x"
