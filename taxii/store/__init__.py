"""TAXII object storage behind one small interface (`ObjectStore`, in base.py), with two
backends side by side: SQLite (sqlite.py, the embedded default: one file per host) and
PostgreSQL (postgres.py: one database shared by several replicas, `[core] database`).

`store_for(settings, path)` opens the configured one; `open_store(target)` opens a path or a
postgresql:// URL. `Store(path)` is the SQLite store, as callers opened it before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

from connectors.core.config import Settings
from connectors.core.database import is_postgres

from ..pagination import BadToken, us_to_rfc3339
from .base import ObjectStore, Page, new_status_id
from .sqlite import SQLiteStore

__all__ = ["BadToken", "ObjectStore", "Page", "SQLiteStore", "Store", "new_status_id",
           "open_store", "store_for", "us_to_rfc3339"]  # fmt: skip

Store = SQLiteStore


def open_store(target: Union[str, Path]) -> ObjectStore:
    """A postgresql:// URL opens the PostgreSQL store (tables created or upgraded, a newer
    schema refused with SchemaTooNew); anything else is a SQLite file path."""
    if is_postgres(str(target)):
        from .postgres import PostgresStore

        return PostgresStore(str(target))
    return SQLiteStore(target)


def store_for(settings: Settings, path: Union[str, Path] = "") -> ObjectStore:
    """[core] database when set (shared by replicas), else the SQLite file `path` ([taxii]
    store), else <state_dir>/taxii.db."""
    return open_store(settings.database or path or settings.state_path / "taxii.db")
