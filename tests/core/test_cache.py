"""The SQLite cache's own behaviour (file, schema, opening); what every backend does is in
test_store_contract.py, which runs on SQLite too."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading

from connectors.core.config import CacheSettings
from connectors.core.store import Cache, CacheEntry

S = CacheSettings()


def entry(key="file:" + "a" * 64, verdict="malicious", at=0.0):
    return CacheEntry(
        key=key, verdict=verdict, report={"kind": "file", "id": key[5:]}, stored_at=at
    )


def test_private_file_and_corruption_recovery(tmp_path):
    path = tmp_path / "state" / "c.db"
    c = Cache(path, S)
    c.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    path.write_bytes(b"this is not a database" * 100)
    c = Cache(path, S)  # moved aside, fresh start
    c.put(entry(at=c.clock.now()))
    assert c.get("file:" + "a" * 64) is not None
    assert list(tmp_path.glob("state/c.db.corrupt-*"))


def test_schema_upgrade_keeps_entries(tmp_path):
    import sqlite3

    path = tmp_path / "c.db"
    c = Cache(path, S)
    c.put(entry(at=c.clock.now()))
    c.db.execute("DROP TABLE leases")
    c.db.execute("PRAGMA user_version=2")  # a cache file written before leases existed
    c.close()
    c = Cache(path, S)
    assert c.get("file:" + "a" * 64) is not None
    assert c.take_leases(["file:q"], 30) == {"file:q"}
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 3


def test_threads_opening_a_new_file_at_once_all_get_it(tmp_path):
    """The first opener switches a new file to WAL; the others wait for it instead of failing
    with "database is locked" (several lookups starting at once on a fresh state dir)."""
    from connectors.core.store.sqlite import SCHEMA, SCHEMA_VERSION, open_db

    def opener(path, start: threading.Barrier, errors: list) -> None:
        start.wait()
        try:
            db = open_db(path, SCHEMA, SCHEMA_VERSION)
            db.execute("INSERT INTO rescans VALUES (?, 0)", (str(threading.get_ident()),))
            db.close()
        except Exception as exc:  # noqa: BLE001 - any failure is the finding
            errors.append(exc)

    # A race: without the fix, 5 of 5 runs of these 40 rounds failed (the first failure ends one).
    for n in range(40):
        path = tmp_path / f"new-{n}.db"
        start = threading.Barrier(8)
        errors: list = []
        threads = [threading.Thread(target=opener, args=(path, start, errors)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors == []
        db = sqlite3.connect(path)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT COUNT(*) FROM rescans").fetchone()[0] == 8
        db.close()


def test_only_the_cache_checkpoints_less_often(tmp_path):
    """The cache's checkpoints (and their fsyncs) come every 16 MB of WAL; the webhook outbox
    and the quota ledger keep SQLite's default, so their durability window stays as it was."""
    from connectors.core.store.sqlite import CACHE_CHECKPOINT_PAGES, open_db

    c = Cache(tmp_path / "cache.db", S)
    other = open_db(tmp_path / "other.db", "CREATE TABLE t (x);", 1)
    try:
        assert c.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == CACHE_CHECKPOINT_PAGES
        plain = sqlite3.connect(":memory:")
        default = plain.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        plain.close()
        assert other.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == default
        assert default < CACHE_CHECKPOINT_PAGES
    finally:
        c.close()
        other.close()
