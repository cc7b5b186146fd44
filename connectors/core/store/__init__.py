"""The core's shared state behind one small interface (`CacheStore`, in base.py): cache entries
with their aliases, the verdict log, hit counters, in-flight lookup leases and reanalysis
records. Two backends side by side: SQLite (sqlite.py, the embedded default: one file per host)
and PostgreSQL (postgres.py: one database shared by every host, `[core] database`).

`cache_for(settings, clock)` opens the configured one; `open_cache(target, settings, clock)` a
SQLite path or a postgresql:// URL. `Cache(path, settings)` is the SQLite store, as callers
opened it before; `open_db` and `write` are the SQLite helpers the other SQLite stores share.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from ..clock import Clock
from ..config import CacheSettings, Settings
from ..database import is_postgres
from .base import CacheEntry, CacheStore, LogRecord
from .sqlite import Cache, SQLiteCache, open_db, write

__all__ = ["Cache", "CacheEntry", "CacheStore", "LogRecord", "SQLiteCache", "cache_for",
           "open_cache", "open_db", "write"]  # fmt: skip


def open_cache(
    target: Union[str, Path], settings: CacheSettings, clock: Optional[Clock] = None
) -> CacheStore:
    """A postgresql:// URL opens the PostgreSQL store (tables created or upgraded, a newer
    schema refused with SchemaTooNew); anything else is a SQLite file path."""
    if is_postgres(str(target)):
        from .postgres import PostgresCache

        return PostgresCache(str(target), settings, clock)
    return SQLiteCache(target, settings, clock)


def cache_for(settings: Settings, clock: Optional[Clock] = None) -> CacheStore:
    """[core] database when set (shared by every host), else <state_dir>/cache.db."""
    return open_cache(settings.database or settings.cache_path, settings.cache, clock)
