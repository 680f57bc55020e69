"""Engines and sessions. SQLite (WAL, synchronous=FULL) by default; PostgreSQL for several workers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, create_engine, event
from sqlmodel import Session, SQLModel

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
    engine = create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
    return Database(url, engine, engine)
