"""Telling dashboards that a meeting changed: in-process fan-out, and across workers on PostgreSQL.

What travels is only "meeting N changed": each dashboard then reads the tally, whose figures move
only every K ballots. With SQLite there is one worker, so a change is published in-process. With
PostgreSQL every worker LISTENs on one channel and every change is a NOTIFY, delivered to all
workers — the one that stored the ballot included — after the change commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable

from sqlalchemy import Connection, text

from app.db import Database, pg_conninfo

log = logging.getLogger("onsite_ballot.live")

CHANNEL = "onsite_ballot_tally"
# A listener that lost its connection tries again after this long; dashboards see a short gap.
RECONNECT_SECONDS = 1.0
# A quiet listener asks the database every LISTEN_CHECK_SECONDS whether its connection still
# answers, and reconnects when no answer comes within PING_SECONDS: a connection dropped by the
# network without a reset would otherwise wait forever for notifications that never come.
LISTEN_CHECK_SECONDS = 10.0
PING_SECONDS = 5.0
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


class Hub:
    def __init__(self, database: Database) -> None:
        self._database = database
        self._subscribers: dict[int, set[asyncio.Queue[None]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    @property
    def cross_worker(self) -> bool:
        return not self._database.is_sqlite

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.cross_worker:
            self._listener = asyncio.create_task(self._listen(), name="live-listener")
        else:
            self.listening.set()

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener

    @contextlib.asynccontextmanager
    async def subscription(self, meeting_id: int) -> AsyncIterator[asyncio.Queue[None]]:
        # A queue of one: a dashboard that is busy needs to know *that* something changed, not how often.
        queue: asyncio.Queue[None] = asyncio.Queue(maxsize=1)
        self._subscribers.setdefault(meeting_id, set()).add(queue)
        try:
            yield queue
        finally:
            self._subscribers[meeting_id].discard(queue)
            if not self._subscribers[meeting_id]:
                del self._subscribers[meeting_id]

    def subscribers(self, meeting_id: int) -> int:
        return len(self._subscribers.get(meeting_id, ()))

    def _publish_local(self, meeting_id: int) -> None:
        for queue in self._subscribers.get(meeting_id, ()):
            if queue.empty():
                queue.put_nowait(None)

    def changed(self, meeting_ids: Iterable[int]) -> None:
        """Say that meetings changed; callable from any thread, after the change committed."""
        ids = sorted(set(meeting_ids))
        if not ids:
            return
        if self.cross_worker:
            with self._database.writing() as conn:
                self.announce(conn, ids)
            return
        if self._loop is None:
            return
        for meeting_id in ids:
            self._loop.call_soon_threadsafe(self._publish_local, meeting_id)

    def announce(self, conn: Connection, meeting_ids: Iterable[int]) -> None:
        """PostgreSQL: tell every worker within the caller's transaction; NOTIFY is delivered at its commit."""
        for meeting_id in sorted(set(meeting_ids)):
            conn.execute(_NOTIFY, {"channel": CHANNEL, "payload": str(meeting_id)})

    async def _listen(self) -> None:
        import psycopg

        conninfo = pg_conninfo(self._database.url)
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(**conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    while True:
                        async for notice in conn.notifies(timeout=LISTEN_CHECK_SECONDS):
                            if notice.payload.isdigit():
                                self._publish_local(int(notice.payload))
                        await asyncio.wait_for(conn.execute("SELECT 1"), PING_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.listening.clear()
                log.warning("live listener lost its connection (%s); retrying", type(exc).__name__)
                await asyncio.sleep(RECONNECT_SECONDS)
