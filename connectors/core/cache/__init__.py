"""The former home of the cache (now connectors.core.store), kept for code that still imports
the SQLite helpers from here."""

from ..store import Cache, CacheEntry, LogRecord, open_db, write

__all__ = ["Cache", "CacheEntry", "LogRecord", "open_db", "write"]
