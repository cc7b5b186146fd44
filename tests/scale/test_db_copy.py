"""`vtconnect db copy`: a host's SQLite state (TAXII objects, statuses and cursors; webhook
jobs, callbacks, dead letters and the job-token key) moved into PostgreSQL in one transaction,
then read back through the PostgreSQL backends. Real SQLite files, real PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from connectors.cli import db as cli_db
from connectors.cli import main
from connectors.core import database
from connectors.webhook.outbox import SQLiteOutbox, open_outbox
from taxii.store import SQLiteStore, new_status_id, open_store

from ..taxii.conftest import FEED, INBOX
from ..taxii.test_server import indicators

NUL_KEY = "sender-key\x00with a NUL\\and a backslash"  # PostgreSQL text holds no NUL


def copy(url: str, cfg: Path, *args: str):
    env = {"VTCONNECT_DATABASE": url, "VTCONNECT_CONFIG": str(cfg)}
    return CliRunner().invoke(main, ["db", "copy", *args], env=env, catch_exceptions=False)


def config(tmp_path: Path, state: Path, extra: str = "") -> Path:
    cfg = tmp_path / "vtconnect.toml"
    cfg.write_text(f'[core]\nstate_dir = "{state}"\n{extra}')
    return cfg


def fill_taxii(path: Path) -> None:
    store = SQLiteStore(path)
    store.add(FEED, indicators(120))
    store.add(INBOX, indicators(30, start=500))
    revoked = dict(indicators(1)[0], revoked=True, modified="2030-01-01T00:00:00.000Z")
    store.add(FEED, [revoked])  # a second version of one object
    store.save_status(INBOX, {"id": new_status_id(), "status": "complete", "total_count": 30})
    store.set_state("publisher:verdict_log", "42")
    store.close()


def fill_webhook(path: Path) -> list:
    box = SQLiteOutbox(path)
    box.job_key()
    jids = [box.accept("splunk", "auto", b'{"ip": "203.0.113.%d"}' % i, None)[0] for i in range(6)]
    keyed, _ = box.accept("elastic", "auto", b'{"x": 1}', NUL_KEY)
    claimed = {j["id"] for j in box.claim(3)}  # three running (as a crash leaves them)
    done = sorted(claimed)[0]
    box.finish(done, "done", {"verdict": "malicious"}, deliver=True)  # a callback pending
    box.retry_later(done, 5, 0.0, "503 from the receiver", dead=True)  # ... now a dead letter
    box.finish(jids[5], "done", {"verdict": "harmless"}, deliver=True)
    box.close()
    return [*jids, keyed]


def every_page(store, collection, limit=25, versions=("all",)):
    rows, token = [], None
    while True:
        page = store.query(collection, limit=limit, next_token=token, versions=list(versions))
        rows += page.objects
        if not page.more:
            return rows
        token = page.next


def test_copy_then_read_back_through_the_postgres_backends(tmp_path, pg_database):
    state = tmp_path / "state"
    state.mkdir()
    fill_taxii(state / "taxii.db")
    jids = fill_webhook(state / "webhook.db")
    r = copy(pg_database, config(tmp_path, state))
    assert r.exit_code == 0, r.output
    assert "taxii: objects -> taxii_objects: 151 rows" in r.output
    assert "webhook: jobs -> webhook_jobs: 7 rows" in r.output
    assert "webhook: meta -> webhook_meta: 1 row\n" in r.output

    sqlite_store, pg_store = SQLiteStore(state / "taxii.db"), open_store(pg_database)
    sqlite_box, pg_box = SQLiteOutbox(state / "webhook.db"), open_outbox(pg_database)
    try:
        for coll in (FEED, INBOX):  # same rows, same date_added: the same pages
            assert every_page(pg_store, coll) == every_page(sqlite_store, coll)
            for versions in (["last"], ["first"]):  # each object's newest version known
                want = every_page(sqlite_store, coll, versions=versions)
                assert every_page(pg_store, coll, versions=versions) == want
        assert len(every_page(pg_store, FEED, versions=["last"])) == 120
        # a `next` token a firewall got from the SQLite server pages on in PostgreSQL
        token = sqlite_store.query(FEED, limit=50).next
        assert pg_store.query(FEED, limit=50, next_token=token) == sqlite_store.query(
            FEED, limit=50, next_token=token
        )
        sid = sqlite_store._rows("SELECT id FROM status", ())[0][0]
        assert pg_store.status(sid) == sqlite_store.status(sid)
        assert pg_store.get_state("publisher:verdict_log") == "42"
        # new objects continue after the copied ones: date_added stays strictly increasing
        last = every_page(pg_store, FEED)[-1]["date_added"]
        assert pg_store.add(FEED, indicators(1, start=900)) == [True]
        assert every_page(pg_store, FEED)[-1]["date_added"] > last

        assert pg_box.job_key() == sqlite_box.job_key()  # job read tokens still verify
        for jid in jids:
            got, want = pg_box.get(jid), sqlite_box.get(jid)
            assert got == want, jid
        assert pg_box.counts() == sqlite_box.counts() == {"queued": 3, "running": 2, "done": 2}
        assert pg_box.delivery_counts() == sqlite_box.delivery_counts()
        assert pg_box.dead_letters() == sqlite_box.dead_letters()
        assert [d["id"] for d in pg_box.due_deliveries()] == [jids[5]]
        # the sender's idempotency key (with its NUL) still finds its job
        assert pg_box.accept("elastic", "auto", b'{"x": 1}', NUL_KEY) == (jids[6], False)
        # jobs a crash left running are taken up by a replica, with the queued ones
        claimed = {j["id"] for j in pg_box.claim(10)}
        assert len(claimed) == 5 and jids[5] not in claimed
    finally:
        for closable in (sqlite_store, pg_store, sqlite_box, pg_box):
            closable.close()


def test_copy_refuses_a_database_with_rows_unless_forced(tmp_path, pg_database):
    state = tmp_path / "state"
    state.mkdir()
    fill_taxii(state / "taxii.db")
    cfg = config(tmp_path, state)
    assert copy(pg_database, cfg).exit_code == 0
    r = copy(pg_database, cfg)
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "already holds rows in taxii_objects, taxii_status, taxii_state" in r.stderr
    assert "--force" in r.stderr
    extra = open_store(pg_database)
    extra.add(INBOX, indicators(3, start=700))  # written to PostgreSQL since: --force drops it
    extra.close()
    r = copy(pg_database, cfg, "--force")
    assert r.exit_code == 0 and "taxii_objects: 151 rows" in r.output, r.output
    store = open_store(pg_database)
    try:
        assert len(every_page(store, INBOX)) == 30 and len(every_page(store, FEED)) == 121
    finally:
        store.close()


def test_copy_reads_other_paths_and_another_state_dir(tmp_path, pg_database):
    """A store's own path setting ([taxii] store, [webhook] outbox) is honoured; --from DIR
    reads the default file names in DIR (a state directory brought over from the old host)."""
    custom = tmp_path / "elsewhere.db"
    fill_taxii(custom)
    cfg = config(tmp_path, tmp_path / "empty", f'[taxii]\nstore = "{custom}"\n')
    r = copy(pg_database, cfg)
    assert r.exit_code == 0 and "taxii_objects: 151 rows" in r.output, r.output
    assert "webhook: no " in r.output  # no outbox file: said, not an error
    old = tmp_path / "old-host"
    old.mkdir()
    fill_webhook(old / "webhook.db")
    r = copy(pg_database, cfg, "--from", str(old))
    assert r.exit_code == 0 and "webhook_jobs: 7 rows" in r.output, r.output


def test_errors_are_one_line_and_exit_2(tmp_path, pg_database):
    state = tmp_path / "state"
    state.mkdir()
    cfg = config(tmp_path, state)
    cases = [(pg_database, "no SQLite state to copy")]
    cases.append(("", "core.database is not set"))
    for url, message in cases:
        r = copy(url, cfg)
        assert r.exit_code == 2 and message in r.stderr, (url, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    (state / "taxii.db").write_bytes(b"this is not a SQLite database, just bytes" * 100)
    r = copy(pg_database, cfg)
    assert r.exit_code == 2 and "cannot read the SQLite state" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    (state / "taxii.db").unlink()
    fill_taxii(state / "taxii.db")
    r = copy("postgresql://nobody@/x?host=/nonexistent", cfg)
    assert r.exit_code == 2 and "cannot connect" in r.stderr and len(r.stderr.splitlines()) == 1


def test_a_row_postgres_refuses_rolls_the_whole_copy_back(tmp_path, pg_database):
    state = tmp_path / "state"
    state.mkdir()
    fill_webhook(state / "webhook.db")
    fill_taxii(state / "taxii.db")
    with SQLiteStore(state / "taxii.db")._wdb as db:  # a NUL in a text column
        db.execute("INSERT INTO state VALUES (?, 'x')", ("odd\x00key",))
    r = copy(pg_database, config(tmp_path, state))
    assert r.exit_code == 2 and "copy failed, nothing was copied" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    with psycopg.connect(pg_database, autocommit=True) as conn:
        for table in ("taxii_objects", "webhook_jobs", "webhook_meta"):
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0


def test_every_shared_table_is_copied_or_said_not_to_be(pg_database):
    """A store that keeps state in PostgreSQL registers its copy (database.copyable): each
    table its schema creates is filled by `db copy` or listed as transient."""
    conn = database.connect(pg_database)
    try:
        for schema in cli_db.schemas():
            before = _tables(conn)
            database.ensure(conn, schema)
            made = _tables(conn) - before - {"vtconnect_schema"}
            spec = database.COPYABLE.get(schema.component)
            assert spec is not None, f"{schema.component} registers no database.copyable"
            covered = {t.target for t in spec.tables} | set(spec.transient)
            assert made == covered, (schema.component, made ^ covered)
    finally:
        conn.close()


def _tables(conn) -> set:
    rows = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
    ).fetchall()
    return {r[0] for r in rows}


def test_copy_moves_the_core_cache_and_its_verdict_log(tmp_path, pg_database):
    pytest.importorskip(
        "connectors.core.store.postgres", reason="the core cache has no PostgreSQL backend here"
    )
    from connectors.core.config import CacheSettings
    from connectors.core.store import CacheEntry, LogRecord, open_cache

    state = tmp_path / "state"
    state.mkdir()
    sha256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
    md5 = "44d88612fea8a8f36de82e1278abb02f"
    now = time.time()
    cache = open_cache(state / "cache.db", CacheSettings())
    cache.put(CacheEntry(f"file:{sha256}", "malicious", {"id": sha256}, now), [f"file:{md5}"])
    cache.put(CacheEntry("domain:example.com", "harmless", {"id": "example.com"}, now))
    cache.log(
        LogRecord(f"file:{sha256}", "md5", md5, "malicious", 90 + i, "splunk", now + i)
        for i in range(5)
    )
    cache.count_hit("splunk", 7, 3)
    assert cache.claim_rescan(f"file:{sha256}", 7)
    assert cache.take_leases(["domain:in-flight.example"], 30)  # in flight: not copied
    want_log, want_stats = cache.log_after(0, limit=100), cache.stats()
    cache.close()

    r = copy(pg_database, config(tmp_path, state))
    assert r.exit_code == 0, r.output
    assert "cache: verdict_log -> cache_verdict_log: 5 rows" in r.output
    pg_cache = open_cache(pg_database, CacheSettings())
    try:
        assert pg_cache.get(f"file:{md5}") == pg_cache.get(f"file:{sha256}")
        assert pg_cache.get(f"file:{md5}").report == {"id": sha256}
        assert pg_cache.canonical([f"file:{md5}"]) == {f"file:{md5}": f"file:{sha256}"}
        assert pg_cache.log_after(0, limit=100) == want_log  # same rows, same numbers
        got = pg_cache.stats()
        for key in ("entries", "by_verdict", "aliases", "log_rows", "hits_total", "misses_total"):
            assert got[key] == want_stats[key], key
        assert not pg_cache.claim_rescan(f"file:{sha256}", 7)  # asked already, on the old host
        assert not pg_cache.lease_held("domain:in-flight.example")
        # a verdict logged after the copy is numbered after the copied ones
        pg_cache.log([LogRecord("domain:example.com", "domain", "example.com", "harmless", 0,
                                "cli", now + 10)])  # fmt: skip
        (new,) = pg_cache.log_after(want_log[-1][0])
        assert new[1].value == "example.com"
    finally:
        pg_cache.close()


def test_copy_moves_the_quota_ledger(tmp_path, pg_database):
    from connectors.core.ledger import TABLES, open_ledger

    state = tmp_path / "state"
    state.mkdir()
    rows = {
        "calls": [("key-a", 1796300000.5 + i) for i in range(4)],
        "days": [("key-a", "2026-12-03", 4), ("key-b", "2026-12-03", 1)],
        "state": [("key-a", 1796300100.0, 2, 1796300050.0)],
        "shares": [("key-a", "2026-12-03", "splunk", 3)],
    }
    sqlite_ledger = open_ledger(state / "quota.db")
    for table, values in rows.items():
        sqlite_ledger.load(table, values)
    want = {table: sorted(sqlite_ledger.rows(table)) for table in TABLES}
    sqlite_ledger.close()
    r = copy(pg_database, config(tmp_path, state))
    assert r.exit_code == 0 and "quota: calls -> quota_calls: 4 rows" in r.output, r.output
    pg_ledger = open_ledger(pg_database)
    try:
        assert {table: sorted(pg_ledger.rows(table)) for table in TABLES} == want
    finally:
        pg_ledger.close()
