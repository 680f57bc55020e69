"""The single writer of ballots: concurrent submits share one transaction and one fsync.

A commit per request pays one fsync per ballot; when 200 phones press submit together that
serialises on the disk. Here each request puts its ballot on a queue and waits; one task takes
everything waiting (and the rest of a burst still arriving, see _gather), writes it in one
transaction on a worker thread, and answers every request only after that transaction is on disk.
A batch that fails as a whole is retried ballot by ballot, so one bad ballot cannot sink the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import suppress

from sqlalchemy.exc import InterfaceError, OperationalError, TimeoutError as PoolTimeout

from app import store
from app.db import Database
from app.disk import DiskState, is_disk_full
from app.errors import DomainError
from app.live import Hub
from app.watchdog import Abandoned, Stuck, Watchdog

log = logging.getLogger("onsite_ballot.writer")

# Enough to absorb a room pressing submit together; small enough that a batch commits quickly.
MAX_BATCH = 256
# How long a batch may wait for the rest of a burst in all, and the quiet time that ends the wait
# (uvloop's timers count whole milliseconds).
GATHER_SECONDS = 0.010
GATHER_SLICE_SECONDS = 0.001
# A batch slower than this is logged: the disk or the database is making phones wait (a busy
# server stores a batch of 64 in about 0.1 s).
SLOW_BATCH_SECONDS = 0.25
# A batch running longer than this makes /readyz answer 503 ("writer_stuck") until it ends or its
# watchdog abandons it: a load balancer sends new phones to another worker meanwhile. Ten times
# the slowest batch seen on a busy server, and above a batch over a 200 ms network (about 2 s).
STALLED_BATCH_SECONDS = 3.0


class WriterUnavailable(RuntimeError):
    pass


class BallotWriter:
    def __init__(
        self, database: Database, *, k: int, hub: Hub | None = None, batch_seconds: float | None = None,
        disk: DiskState | None = None,
    ) -> None:
        self._database = database
        self._disk = disk or DiskState(None)
        self._k = k
        self._hub = hub
        self._stopped = False
        self._queue: asyncio.Queue[tuple[store.Submission, asyncio.Future[store.Outcome]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        # A batch that outlives this bound is on a dead connection: abandoned, and run once more.
        self._watchdog = Watchdog(
            seconds=batch_seconds or database.batch_seconds, name="ballot-writer", patience=STALLED_BATCH_SECONDS
        )

    @property
    def health(self) -> str:
        """"ok"; "stuck" while a batch runs past STALLED_BATCH_SECONDS, or after one was abandoned
        until another finishes; "stopped" when the writer is not running."""
        if self._stopped or (self._task is not None and self._task.done()):
            return "stopped"
        return "ok" if self._watchdog.healthy else "stuck"

    def start(self) -> None:
        self._stopped = False  # an app's lifespan can run more than once (some test transports)
        self._task = asyncio.create_task(self._run(), name="ballot-writer")

    async def stop(self) -> None:
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._watchdog.close()

    async def submit(self, submission: store.Submission) -> store.Outcome:
        if self._task is None and not self._stopped:
            # A server without a lifespan (some test transports): start on the first ballot.
            self.start()
        if self._task is None or self._task.done():
            raise WriterUnavailable("the ballot writer is not running")
        future: asyncio.Future[store.Outcome] = asyncio.get_running_loop().create_future()
        await self._queue.put((submission, future))
        return await future

    async def _gather(self) -> list[tuple[store.Submission, asyncio.Future[store.Outcome]]]:
        """The next batch: what is waiting, and the rest of a burst that is still arriving.

        A burst of submits reaches the queue one request at a time, as the event loop parses
        them and answers the last batch's phones. Taking only what is already there would cut
        each burst into several small batches, and a batch has a fixed cost (its statements, its
        commit) near that of 20 ballots. So the writer waits in slices of GATHER_SLICE_SECONDS
        for as long as the loop is busy (a slice ends late) or a slice brings more ballots, never
        longer than GATHER_SECONDS in all. A lone ballot on a quiet server waits one slice.
        """
        batch = [await self._queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + GATHER_SECONDS
        while True:
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            if len(batch) >= MAX_BATCH or loop.time() >= deadline:
                return batch
            before, started = len(batch), loop.time()
            await asyncio.sleep(GATHER_SLICE_SECONDS)
            busy = loop.time() - started > 2 * GATHER_SLICE_SECONDS
            if not busy and self._queue.empty() and len(batch) == before:
                return batch

    async def _run(self) -> None:
        while True:
            batch = await self._gather()
            try:
                outcomes = await self._store([sub for sub, _ in batch])
                self._disk.wrote()
            except Exception as exc:
                # The exception's type only: its text could quote a token.
                log.error("ballot writer failed: %s", type(exc).__name__)
                reason = "internal"
                if is_disk_full(exc):
                    self._disk.failed()
                    reason = "disk_full"
                outcomes = [store.Outcome(error=WriteFailed(reason))] * len(batch)
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)

    async def _store(self, submissions: list[store.Submission]) -> list[store.Outcome]:
        """Write a batch on the watchdog's thread. A batch abandoned on a dead connection is run once
        more, on a fresh one: a code its first run spent (if that run committed) answers "already
        counted", so each ballot is stored once and each phone told once."""
        try:
            return await self._watchdog.run(lambda: self._write(submissions))
        except Stuck:
            log.warning("a batch of %d ballots was abandoned; running it again", len(submissions))
        return await self._watchdog.run(lambda: self._write(submissions))

    def _write(self, submissions: list[store.Submission]) -> list[store.Outcome]:
        started = time.monotonic()
        outcomes = self._write_batch(submissions)
        seconds = time.monotonic() - started
        if seconds > SLOW_BATCH_SECONDS:
            # Phones wait this long: worth a line for whoever watches the server (sizes only).
            log.warning("a batch of %d ballots took %.0f ms to store", len(submissions), seconds * 1000)
        if self._hub is not None and not self._hub.cross_worker:
            # In this process only, and after the commit: a dashboard told now reads the new tally.
            self._hub.changed(_changed(outcomes))
        return outcomes

    def _write_batch(self, submissions: list[store.Submission]) -> list[store.Outcome]:
        try:
            return self._commit(submissions)
        except Exception as exc:
            if len(submissions) == 1 or _database_unavailable(exc):
                raise
            log.warning("batch of %d failed (%s); retrying one by one", len(submissions), type(exc).__name__)
        outcomes = []
        for submission in submissions:
            try:
                outcomes.extend(self._commit([submission]))
            except Exception as exc:
                log.error("ballot write failed: %s", type(exc).__name__)
                outcomes.append(store.Outcome(error=WriteFailed("internal")))
        return outcomes

    def _commit(self, submissions: list[store.Submission]) -> list[store.Outcome]:
        with self._database.writing() as conn:
            outcomes = store.submit_batch(conn=conn, submissions=submissions, k=self._k)
            if self._hub is not None and self._hub.cross_worker:
                # Every worker's dashboards hear of it when this transaction commits, not before.
                self._hub.announce(conn, _changed(outcomes))
        return outcomes


def _database_unavailable(exc: Exception) -> bool:
    """The database, not a ballot, failed (a lost connection, a lock held too long, a full disk):
    the same would fail each ballot again, so the batch's phones hear 503 at once."""
    return isinstance(exc, (OperationalError, InterfaceError, PoolTimeout, Abandoned))


def _changed(outcomes: list[store.Outcome]) -> set[int]:
    return {outcome.meeting_id for outcome in outcomes if outcome.meeting_id is not None}


class WriteFailed(DomainError):
    """Nothing was stored; the phone keeps the ballot and may send it again."""

    status = 503
