"""Backups: SQLite through its online backup API; PostgreSQL through pg_dump, which we only name.

The online backup reads one consistent snapshot while the service keeps writing (WAL lets
readers and the writer proceed together), so a backup never holds up a meeting in progress.
Restoring writes the pages through SQLite as well, never by copying files over a database
whose -wal file would then no longer match it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import URL, make_url

# Tables a database of ours has at any migration; a file without them is not our backup.
REQUIRED_TABLES = frozenset({"alembic_version", "meeting", "ballot", "ballot_token"})
# How long to wait for the service's writer before giving up: a batch commits in milliseconds.
BUSY_TIMEOUT_S = 10.0


# Held shared by every serving process for as long as it runs, and exclusively by a restore: a
# restore cannot begin under a running server, and a server cannot start during a restore. An
# advisory lock (flock) goes with its process: a server killed by SIGKILL holds nothing.
LOCK_FILE = "serving.lock"


class BackupError(Exception):
    """Said to the operator as it is; nothing was changed."""


class RestoreInProgress(RuntimeError):
    """A server was asked to start while a restore replaces its database."""


def _locked(data_dir: Path, mode: int) -> int | None:
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@contextmanager
def serving(data_dir: Path) -> Iterator[None]:
    """Held by a server process while it runs (shared: several workers hold it together)."""
    fd = _locked(data_dir, fcntl.LOCK_SH)
    if fd is None:
        raise RestoreInProgress(
            f"数据目录 {data_dir} 中的数据库正在恢复，服务未启动；恢复完成后再启动。"
            f" · A restore is replacing the database in {data_dir}; start the service once it is done."
        )
    try:
        yield
    finally:
        os.close(fd)


@contextmanager
def restoring(data_dir: Path) -> Iterator[None]:
    """Held by a restore: refused while any server holds the data folder."""
    fd = _locked(data_dir, fcntl.LOCK_EX)
    if fd is None:
        raise BackupError(
            f"服务正在使用数据目录 {data_dir} 中的数据库，不能恢复。"
            "请先停止服务（onsite-ballot serve），再运行 restore。\n"
            f"The service is running on the database in {data_dir}: stop it (onsite-ballot serve) before you restore."
        )
    try:
        yield
    finally:
        os.close(fd)


def sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError(f"no database file in {url!r}")
    return Path(database)


def _copy(source: sqlite3.Connection, target: sqlite3.Connection) -> None:
    source.backup(target)  # all pages in one step: one read snapshot of the source
    target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
    target.commit()


def backup_sqlite(database: Path, destination: Path) -> int:
    """Copy the live database to destination (a new file); returns its size in bytes."""
    if not database.exists():
        raise BackupError(f"{database} does not exist")
    if destination.exists():
        raise BackupError(f"{destination} exists; a backup never overwrites a file")
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    partial.unlink(missing_ok=True)
    # Ballots are inside: readable by the service's own user only.
    partial.touch(mode=0o600)
    # Read-write, though it only reads: a read-only connection cannot open a WAL database
    # whose -shm file is gone (the service stopped).
    source = sqlite3.connect(database, timeout=BUSY_TIMEOUT_S)
    target = sqlite3.connect(partial)
    try:
        _copy(source, target)
        _check(target, destination)
    finally:
        target.close()
        source.close()
    os.replace(partial, destination)  # only a whole backup ever carries the name asked for
    return destination.stat().st_size


def _check(conn: sqlite3.Connection, name: Path) -> None:
    try:
        ok = conn.execute("PRAGMA integrity_check").fetchone()
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{name} is not a SQLite database ({exc})") from None
    if ok != ("ok",):
        raise BackupError(f"{name} fails SQLite's integrity check: {ok}")
    missing = REQUIRED_TABLES - tables
    if missing:
        raise BackupError(f"{name} is not an onsite-ballot database (no {', '.join(sorted(missing))})")


def restore_sqlite(backup: Path, database: Path) -> Path | None:
    """Replace the database's content with the backup's. The service must be stopped.

    The current database is first backed up beside itself; returns that copy's path (None when
    there was no database yet).
    """
    if not backup.exists():
        raise BackupError(f"{backup} does not exist")
    source = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
    try:
        _check(source, backup)
        kept = None
        if database.exists():
            stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            kept = database.with_name(f"{database.name}.before-restore-{stamp}")
            backup_sqlite(database, kept)
        database.parent.mkdir(parents=True, exist_ok=True)
        target = sqlite3.connect(database, timeout=BUSY_TIMEOUT_S)
        try:
            source.backup(target)
            # The service's own mode; the backup file itself was saved without a WAL.
            target.execute("PRAGMA journal_mode=WAL")
            _check(target, database)
        finally:
            target.close()
    finally:
        source.close()
    return kept


def _libpq_url(url: str) -> str:
    # pg_dump reads libpq URLs: no "+psycopg", and no password on a command line or in a
    # shell history (libpq takes it from PGPASSWORD or ~/.pgpass).
    given = make_url(url)
    bare = URL.create("postgresql", given.username, None, given.host, given.port, given.database, given.query)
    return bare.render_as_string(hide_password=False)


def pg_dump_command(url: str, path: Path) -> str:
    return f"pg_dump --format=custom --no-owner --file='{path}' '{_libpq_url(url)}'"


def pg_restore_command(url: str, path: Path) -> str:
    return f"pg_restore --clean --if-exists --no-owner --dbname='{_libpq_url(url)}' '{path}'"
