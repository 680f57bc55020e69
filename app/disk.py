"""Knowing that the server's disk is full, so that /readyz and every write can say so plainly.

A full disk shows itself as a failed write: SQLite's "database or disk is full" (SQLITE_FULL),
PostgreSQL's disk_full (SQLSTATE 53100, when its own disk fills), or ENOSPC from the system. Such a
failure is noted here; until a write succeeds again, or DISK_FULL_HOLD_SECONDS pass, the disk counts
as full. With SQLite the free space of the database's folder is also read directly, so /readyz says
so before the next write fails. Nothing that failed was stored: the phone keeps its ballot.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from pathlib import Path

# A disk below this much free space counts as full: SQLite needs a few pages for any commit.
MIN_FREE_BYTES = 64 * 1024
# How long a failure for lack of space keeps the disk "full" when no write has succeeded since
# (PostgreSQL's disk cannot be read from here): long enough for a load balancer to see it.
DISK_FULL_HOLD_SECONDS = 30.0
SQLITE_FULL = 13
PG_DISK_FULL = "53100"


def is_disk_full(exc: BaseException) -> bool:
    """Whether the failure, or one that caused it, was a lack of disk space."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        error = todo.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, sqlite3.Error) and getattr(error, "sqlite_errorcode", None) == SQLITE_FULL:
            return True
        if getattr(error, "sqlstate", None) == PG_DISK_FULL:
            return True
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return True
        todo.extend([error.__cause__, error.__context__, getattr(error, "orig", None)])
    return False


class DiskState:
    def __init__(self, folder: Path | None) -> None:
        self.folder = folder  # where the SQLite database is; None for PostgreSQL
        self._failed_at: float | None = None

    def failed(self) -> None:
        self._failed_at = time.monotonic()

    def wrote(self) -> None:
        self._failed_at = None

    @property
    def full(self) -> bool:
        failed_at = self._failed_at
        if failed_at is not None and time.monotonic() - failed_at < DISK_FULL_HOLD_SECONDS:
            return True
        if self.folder is None:
            return False
        try:
            stats = os.statvfs(self.folder)
        except OSError:
            return False
        return stats.f_bavail * stats.f_frsize < MIN_FREE_BYTES
