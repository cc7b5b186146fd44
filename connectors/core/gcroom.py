"""Room for the young generation while cold lookups run.

Each VirusTotal answer decodes into hundreds of dicts and lists that live a few microseconds, and
each lookup keeps a few records. With the default threshold (700 allocations) the collector
scanned the young generation about once per answer, and every scan met answers being decoded and
records not yet settled: ~17% of a cold lookup's CPU (bench/core.py, 2,500 values). Collecting it
every YOUNG allocations instead lets most of that garbage go by reference counting first, and
costs a few thousand objects of memory at most. Only while a fetch runs, for the whole process
(the collector has one threshold), and put back unless someone else changed it meanwhile.
"""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager
from typing import Iterator, Optional, Tuple

YOUNG = 10_000  # measured: 700 -> 3,000 -> 10,000 -> 30,000: -9%, -16%, -14% CPU per value

_lock = threading.Lock()
_depth = 0
_saved: Optional[Tuple[int, ...]] = None


@contextmanager
def roomy_young_generation() -> Iterator[None]:
    global _depth, _saved
    with _lock:
        _depth += 1
        if _depth == 1:
            current = gc.get_threshold()
            # 0 turns collection off and a higher threshold was chosen by the host: keep both.
            if 0 < current[0] < YOUNG:
                _saved = current
                gc.set_threshold(YOUNG, *current[1:])
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None:
                if gc.get_threshold()[0] == YOUNG:
                    gc.set_threshold(*_saved)
                _saved = None
