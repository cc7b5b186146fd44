"""`vtconnect db init|upgrade|status` against a real PostgreSQL (tests/pg.py)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from connectors.cli import db as cli_db
from connectors.cli import main
from connectors.core import database


def run(url: str, *args: str):
    env = {"VTCONNECT_DATABASE": url, "VTCONNECT_CONFIG": ""}
    return CliRunner().invoke(main, ["db", *args], env=env, catch_exceptions=False)


def versions(url: str) -> dict:
    conn = database.connect(url)
    try:
        return database.installed_versions(conn)
    finally:
        conn.close()


def test_init_status_upgrade(pg_database):
    known = {s.component: s.version for s in cli_db.schemas()}
    assert {"taxii", "webhook", "quota"} <= set(known)
    r = run(pg_database, "status")
    assert r.exit_code == 1 and "missing: vtconnect db init" in r.output
    r = run(pg_database, "init")
    assert r.exit_code == 0 and "taxii: created at version" in r.output, r.output
    assert versions(pg_database) == known
    r = run(pg_database, "init")  # again: nothing to do, said so
    assert r.exit_code == 0 and "taxii: already at version" in r.output
    r = run(pg_database, "status")
    assert r.exit_code == 0 and r.output.count("current") == len(known), r.output
    # an older installed version: status says so, upgrade applies what is missing
    conn = database.connect(pg_database)
    conn.execute("DROP TABLE webhook_jobs, webhook_meta")
    conn.execute("UPDATE vtconnect_schema SET version = 0 WHERE component = 'webhook'")
    conn.close()
    assert "vtconnect db" in run(pg_database, "status").output
    r = run(pg_database, "upgrade")
    assert r.exit_code == 0 and f"webhook: 0 -> {known['webhook']}" in r.output, r.output
    assert "taxii: up to date" in r.output
    assert run(pg_database, "status").exit_code == 0


def test_a_newer_schema_is_one_line_and_exit_2(pg_database):
    run(pg_database, "init")
    conn = database.connect(pg_database)
    conn.execute("UPDATE vtconnect_schema SET version = 99 WHERE component = 'taxii'")
    conn.close()
    r = run(pg_database, "status")
    assert r.exit_code == 1 and "newer than this vtconnect" in r.output
    for command in ("upgrade", "init"):
        r = CliRunner().invoke(
            main, ["db", command], env={"VTCONNECT_DATABASE": pg_database, "VTCONNECT_CONFIG": ""}
        )
        assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "taxii is version 99, newer than this vtconnect knows" in r.stderr


@pytest.mark.parametrize(
    "url, message",
    [
        ("", "core.database is not set"),
        ("postgresql://nobody@/x?host=/nonexistent", "cannot connect"),
    ],
)
def test_without_a_usable_database(url, message):
    r = CliRunner().invoke(
        main, ["db", "status"], env={"VTCONNECT_DATABASE": url, "VTCONNECT_CONFIG": ""}
    )
    assert r.exit_code == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1
