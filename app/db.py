"""Engines and sessions. SQLite (WAL, synchronous=FULL) by default; PostgreSQL for several workers."""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, create_engine, event, exc
from sqlalchemy.engine import make_url
from sqlmodel import Session, SQLModel

from app.watchdog import current_watch

log = logging.getLogger("onsite_ballot.db")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION
metadata: MetaData = SQLModel.metadata

# How long a SQLite writer waits for another before giving up: longer than any close-out.
SQLITE_BUSY_TIMEOUT_MS = 10_000

# PostgreSQL, on every connection (libpq parameters). A new connection that gets no answer in
# PG_CONNECT_TIMEOUT_S fails instead of hanging. The kernel probes an idle connection after 10 s,
# every 5 s, and drops it after 3 unanswered probes; data sent and never acknowledged drops it after
# 10 s (tcp_user_timeout): Linux's defaults wait about two hours for a peer that vanished. The server
# ends a statement after 30 s (nothing here takes a tenth of that: closing a 10,000-ballot meeting
# takes about 1 s), and a session left idle in a transaction after 60 s, so that a client that died
# mid-transaction does not hold its row locks for long.
PG_CONNECT_TIMEOUT_S = 5
PG_STATEMENT_TIMEOUT_MS = 30_000
PG_IDLE_IN_TRANSACTION_TIMEOUT_MS = 60_000
PG_CONNECT_ARGS: dict[str, Any] = {
    "connect_timeout": PG_CONNECT_TIMEOUT_S,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
    "options": f"-c statement_timeout={PG_STATEMENT_TIMEOUT_MS}"
    f" -c idle_in_transaction_session_timeout={PG_IDLE_IN_TRANSACTION_TIMEOUT_MS}",
}
# The pool: a request waits this long for a free connection, then fails (the default is 30 s).
PG_POOL_TIMEOUT_S = 10
# How long a ballot batch may take before the writer's watchdog abandons it (app.watchdog). A
# batch takes 5-50 ms; it can wait about 1 s for a close-out's locks, and a new connection may take
# PG_CONNECT_TIMEOUT_S. On SQLite a batch may wait SQLITE_BUSY_TIMEOUT_MS for another writer,
# which is a bound already: the watchdog waits longer, for a disk that stops answering.
PG_BATCH_SECONDS = 10.0
SQLITE_BATCH_SECONDS = SQLITE_BUSY_TIMEOUT_MS / 1000 + 5


@dataclass
class Database:
    """The write engine takes SQLite's write lock at BEGIN, so two writers queue instead of
    failing on a lock upgrade; the read engine begins deferred so readers never wait in WAL."""

    url: str
    write: Engine
    read: Engine

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @property
    def batch_seconds(self) -> float:
        """The writer watchdog's bound on one batch, for this backend."""
        return SQLITE_BATCH_SECONDS if self.is_sqlite else PG_BATCH_SECONDS

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.write, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """For requests that only read: on SQLite it never takes the write lock."""
        with Session(self.read, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        with self.write.begin() as conn:
            yield conn

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        with self.read.connect() as conn:
            yield conn

    def dispose(self) -> None:
        self.write.dispose()
        if self.read is not self.write:
            self.read.dispose()


def _sqlite_engine(url: str, *, immediate: bool) -> Engine:
    path = url.removeprefix("sqlite:///")
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
    _watch_checkouts(engine, ping=False)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN, so that it can be BEGIN IMMEDIATE.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a ballot acknowledged to a phone survives a power cut, not only a crash.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # Freed pages are zeroed, so a ballot's old bytes do not linger in the file.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def create_database(url: str) -> Database:
    if url.startswith("sqlite"):
        return Database(url, _sqlite_engine(url, immediate=True), _sqlite_engine(url, immediate=False))
    # The pool's own pre-ping is replaced by the one below, which runs under the caller's watch.
    engine = create_engine(
        url, pool_size=10, max_overflow=20, pool_timeout=PG_POOL_TIMEOUT_S, connect_args=PG_CONNECT_ARGS
    )
    _watch_checkouts(engine, ping=True)
    return Database(url, engine, engine)


def pg_conninfo(url: str) -> dict[str, Any]:
    """libpq parameters for a psycopg connection made outside the pool (the live listener)."""
    parsed = make_url(url)
    params = {
        "host": parsed.host, "port": parsed.port, "user": parsed.username, "password": parsed.password,
        "dbname": parsed.database, **parsed.query, **PG_CONNECT_ARGS,
    }
    return {key: value for key, value in params.items() if value is not None}


# ---- what the watchdog cuts (app.watchdog) ---------------------------------------------------------


def _watch_checkouts(engine: Engine, *, ping: bool) -> None:
    """Every connection a thread checks out under a watch is attached to it, before any I/O on it;
    pooled PostgreSQL connections are pinged at checkout, under the same watch."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        record.info["fresh"] = True  # just made: no ping needed

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, proxy: Any) -> None:
        watch = current_watch()
        if watch is not None:
            watch.attach(_cutter(engine, dbapi_conn))
        if ping and not record.info.pop("fresh", False):
            try:
                engine.dialect.do_ping(dbapi_conn)
            except Exception as error:
                # The pool replaces the connection and tries once more.
                raise exc.DisconnectionError(type(error).__name__) from None


def _cutter(engine: Engine, dbapi_conn: Any) -> Any:
    if isinstance(dbapi_conn, sqlite3.Connection):
        # Thread-safe by design: the statement running in the other thread stops with an error.
        return dbapi_conn.interrupt
    fd = dbapi_conn.pgconn.socket
    inode = os.fstat(fd).st_ino
    pid = dbapi_conn.info.backend_pid
    url = engine.url.render_as_string(hide_password=False)

    def cut() -> None:
        _shut_down(fd, inode)
        _end_server_process(url, pid)
        # The pool's other connections went through the same network: drop the idle ones now
        # rather than find each dead at its next checkout.
        engine.dispose()

    return cut


def _shut_down(fd: int, inode: int) -> None:
    """Shut the socket down under the blocked thread, so that its wait returns with an error."""
    with suppress(OSError):
        if os.fstat(fd).st_ino != inode:
            return  # closed meanwhile, and the number reused for another file
        sock = socket.socket(fileno=os.dup(fd))
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.close()


def _end_server_process(url: str, pid: int) -> None:
    """End the server's side of a cut connection: its transaction rolls back and its row locks go
    now, not when the server notices the silence (idle_in_transaction_session_timeout)."""
    import psycopg

    try:
        with psycopg.connect(**pg_conninfo(url), autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    except psycopg.Error as error:
        log.warning("could not end the server process of a cut connection (%s)", type(error).__name__)
