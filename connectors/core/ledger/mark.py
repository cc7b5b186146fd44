"""A change mark beside the SQLite ledger (`<ledger>-state`, 8 bytes).

Every process on the host writes a new mark after it commits a change to a key's 429 state.
An unlimited tier asks for the cooldown before every request; with the mark it queries only
after a change (or once a second, for a writer that sets no mark), not per request: the query
was ~3% of a cold lookup's CPU. The mark is read with one pread, not mapped: a mapped file that
someone truncates kills the reader (SIGBUS). Where the file cannot be opened, or os.pread does
not exist (Windows), every ask queries, as before. A torn read differs from every mark written,
which only costs one query; a short one (a new or truncated file) is mended with a new mark.
"""

from __future__ import annotations

import os
from typing import Optional

SIZE = 8


class ChangeMark:
    def __init__(self, path: str) -> None:
        self._fd: Optional[int] = None
        if not hasattr(os, "pread"):
            return
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:  # read-only state dir, a directory by that name, ...
            return
        self._fd = fd

    def read(self) -> Optional[bytes]:
        """The current mark; None when there is no mark to trust."""
        if self._fd is None:
            return None
        try:
            mark = os.pread(self._fd, SIZE, 0)
        except OSError:
            return None
        if len(mark) < SIZE:  # new, or truncated by someone: mended with a mark of our own
            return self.change()
        return mark

    def change(self) -> Optional[bytes]:
        """After a committed change: a new mark, never one written before (returned; None when
        it could not be written, and readers fall back to their once-a-second query)."""
        if self._fd is None:
            return None
        mark = os.urandom(SIZE)
        try:
            os.pwrite(self._fd, mark, 0)
        except OSError:
            return None
        return mark

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
