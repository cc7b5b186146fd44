"""A change mark beside the SQLite ledger (`<ledger>-state`, 8 bytes mapped into memory).

Every process on the host writes a new mark after it commits a change to a key's 429 state.
An unlimited tier asks for the cooldown before every request; with the mark it queries only
after a change (or once a second, for a writer that sets no mark), not per request: the query
was ~3% of a cold lookup's CPU. Where the file cannot be mapped, every ask queries, as before.
A torn read of the mark differs from every mark written, which only costs one query.
"""

from __future__ import annotations

import mmap
import os
from typing import Optional

SIZE = 8


class ChangeMark:
    def __init__(self, path: str) -> None:
        self._map: Optional[mmap.mmap] = None
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                if os.fstat(fd).st_size < SIZE:
                    os.ftruncate(fd, SIZE)
                self._map = mmap.mmap(fd, SIZE)
            finally:
                os.close(fd)
        except (OSError, ValueError):  # read-only state dir, a directory by that name, ...
            self._map = None

    def read(self) -> Optional[bytes]:
        """The current mark; None when there is no mark to trust."""
        return None if self._map is None else self._map[:SIZE]

    def change(self) -> None:
        """After a committed change: a new mark, never one written before."""
        if self._map is not None:
            self._map[:SIZE] = os.urandom(SIZE)

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
