"""The webhook outbox behind one small interface (`Outbox`, in base.py), with two backends side
by side: SQLite (sqlite.py, the embedded default: one file per host) and PostgreSQL
(postgres.py: one job table shared by several replicas, jobs claimed with FOR UPDATE SKIP LOCKED
and a lease, `[core] database`).

`outbox_for(settings, cfg)` opens the configured one; `open_outbox(target)` a SQLite path or a
postgresql:// URL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Union

from connectors.core.config import Settings
from connectors.core.database import is_postgres

from .base import Outbox
from .sqlite import SQLiteOutbox

__all__ = ["DEFAULT_LEASE", "Outbox", "SQLiteOutbox", "open_outbox", "outbox_for"]
DEFAULT_LEASE = 300.0  # seconds a replica holds a claimed job or callback before others may


def open_outbox(target: Union[str, Path], lease: float = DEFAULT_LEASE) -> Outbox:
    if is_postgres(str(target)):
        from .postgres import PostgresOutbox

        return PostgresOutbox(str(target), lease=lease)
    return SQLiteOutbox(target)


def outbox_for(settings: Settings, cfg: Any) -> Outbox:
    """[core] database when set (shared by replicas), else [webhook] outbox, else
    <state_dir>/webhook.db. `cfg` is the WebhookConfig."""
    target = settings.database or cfg.outbox or settings.state_path / "webhook.db"
    return open_outbox(target, lease=cfg.lease_seconds)
