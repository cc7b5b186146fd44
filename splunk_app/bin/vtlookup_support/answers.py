"""vtlookup's finished answers, kept on this search head for a few minutes between searches.

A search over known indicators spent ~140 µs per distinct value rebuilding the same output
columns: parse, KV store fetch, report decoding, policy, rendering, CSV encoding
(bench/splunk.py). Here the encoded columns are kept per (settings, type option, value), so the
next search pays one SQLite read per batch instead. An answer is kept for `[command]
answers_ttl` seconds at most (and never longer than its verdict's cache TTL), so a verdict
that another search head refreshed in the shared KV store shows here within that time. Only
answers that the cache would also keep are stored: never quota or error.
"""

from __future__ import annotations

import hashlib
import sqlite3
from typing import Any, Dict, Iterable, Mapping, Tuple

from connectors.core.store.sqlite import open_db, write

SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    verdict TEXT NOT NULL,
    columns TEXT NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS answers_expiry ON answers (expires_at);
"""
SCHEMA_VERSION = 1
KEYS_PER_QUERY = 500  # below SQLite's bound-parameter limit on every supported version

Answer = Tuple[str, str]  # (verdict, encoded output columns)


def fingerprint(*parts: Any) -> str:
    """Anything that changes what an answer looks like (policy, privacy, field list, app
    version) goes into the key, so a changed setting never serves an old answer."""
    return hashlib.sha256(repr(parts).encode("utf-8")).hexdigest()[:16]


class Answers:
    def __init__(self, path: str, fingerprint: str, kind: str, clock: Any) -> None:
        self._db = open_db(path, SCHEMA, SCHEMA_VERSION)
        self._prefix = f"{fingerprint}|{kind}|"
        self._clock = clock

    def close(self) -> None:
        self._db.close()

    def get_many(self, values: Iterable[str]) -> Dict[str, Answer]:
        wanted = [self._prefix + v for v in values]
        skip = len(self._prefix)
        now = self._clock.now()
        found: Dict[str, Answer] = {}
        try:
            for i in range(0, len(wanted), KEYS_PER_QUERY):
                keys = wanted[i : i + KEYS_PER_QUERY]
                rows = self._db.execute(
                    "SELECT key, verdict, columns FROM answers WHERE expires_at > ? AND key IN "
                    f"({','.join('?' * len(keys))})",
                    [now, *keys],
                )
                for key, verdict, columns in rows:
                    found[key[skip:]] = (verdict, columns)
        except sqlite3.Error:
            return {}  # a busy or damaged file only costs the slower path
        return found

    def put_many(self, answers: Mapping[str, Tuple[str, str, float]]) -> None:
        """value -> (verdict, encoded columns, seconds to keep)."""
        if not answers:
            return
        now = self._clock.now()
        rows = [(self._prefix + v, a[0], a[1], now + a[2]) for v, a in answers.items() if a[2] > 0]

        def save(db: sqlite3.Connection) -> None:
            db.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?)", rows)
            db.execute("DELETE FROM answers WHERE expires_at <= ?", (now,))

        try:
            write(self._db, save)
        except (sqlite3.Error, UnicodeError):  # busy, damaged, or text SQLite cannot hold
            pass  # not kept: the next search takes the slower path
