"""The database's clock, and the order in which results were frozen.

Webhook leases, their retry schedule, lockouts and the close time of a result are read on one
clock that every worker and host shares: the database's. The application host's own clock can jump
(an NTP step, a wrong manual setting); a lease measured on it would end early on one worker and a
second worker would send the same delivery, and a result closed by a host running behind would sort
before results a client already holds. SQLite lives on this host, so its clock is this host's, but
it is still read through SQLite, so that the code is the same on both backends.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, func, select, text
from sqlmodel import Session, col

from app.tables import Result

# Any constant shared by every process: the key of the transaction-level advisory lock that
# serialises the numbering of results on PostgreSQL.
RESULT_ORDER_LOCK = 7_201_313


def _dialect(conn: Session | Connection) -> str:
    bind = conn.connection() if isinstance(conn, Session) else conn
    return bind.dialect.name


def database_now(conn: Session | Connection) -> dt.datetime:
    """The database's time, in UTC."""
    if _dialect(conn) == "postgresql":
        value: dt.datetime = conn.execute(text("SELECT statement_timestamp()")).scalar_one()
        return value.astimezone(dt.UTC)
    stamp = conn.execute(text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")).scalar_one()
    return dt.datetime.fromisoformat(stamp).replace(tzinfo=dt.UTC)


def next_result_number(session: Session) -> int:
    """The next number in the order in which results are frozen, for the results export's cursor.

    Numbers must become visible in their order, or a client paging with a cursor skips a result
    whose smaller number commits after a larger one it has read. So numbering is serialised until
    the commit: on PostgreSQL by an advisory lock held to the end of the transaction, then the
    sequence; on SQLite by the write lock every writing transaction holds (BEGIN IMMEDIATE).
    """
    if _dialect(session) == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(RESULT_ORDER_LOCK)))
        return int(session.execute(text("SELECT nextval('result_seq')")).scalar_one())
    return int(session.execute(select(func.coalesce(func.max(col(Result.seq)), 0) + 1)).scalar_one())
