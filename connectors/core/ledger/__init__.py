"""The quota ledger behind one small interface (`Ledger` and its per-transaction `Book`, in
base.py), with two backends side by side: SQLite (sqlite.py, the embedded default: one file
per host, <state_dir>/quota.db or [quota] path) and PostgreSQL (postgres.py: one budget per API
key for every host sharing `[core] database`). The governor's policy lives in quota.py and
talks only to this interface.

`ledger_for(settings)` opens the configured one; `open_ledger(target)` a SQLite path or a
postgresql:// URL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

from connectors.core.config import Settings
from connectors.core.database import is_postgres

from .base import TABLES, Book, Ledger, LedgerUnavailable, Look, State
from .sqlite import SQLiteLedger

__all__ = ["TABLES", "Book", "Ledger", "LedgerUnavailable", "Look", "SQLiteLedger", "State",
           "ledger_for", "ledger_target", "open_ledger"]  # fmt: skip


def open_ledger(target: Union[str, Path]) -> Ledger:
    """A postgresql:// URL opens the PostgreSQL ledger (tables created or upgraded, a newer
    schema refused with SchemaTooNew); anything else is a SQLite file path (created on first
    use)."""
    if is_postgres(str(target)):
        from .postgres import PostgresLedger

        return PostgresLedger(str(target))
    return SQLiteLedger(target)


def ledger_target(settings: Settings) -> Union[str, Path]:
    """[core] database when set (shared by every host), else the SQLite file ([quota] path or
    <state_dir>/quota.db)."""
    return settings.database or settings.quota_path


def ledger_for(settings: Settings) -> Ledger:
    return open_ledger(ledger_target(settings))
