"""The core's shared state: verdict cache with aliases, the verdict log, in-flight lookup
leases and reanalysis records."""

from .sqlite import Cache, CacheEntry, LogRecord, open_db, write

__all__ = ["Cache", "CacheEntry", "LogRecord", "open_db", "write"]
