"""The single writer of ballots: concurrent submits share one transaction and one fsync.

A commit per request pays one fsync per ballot; when 200 phones press submit together that
serialises on the disk. Here each request puts its ballot on a queue and waits; one task takes
everything waiting, writes it in one transaction on a worker thread, and answers every request
only after that transaction is on disk. A batch that fails as a whole is retried ballot by
ballot, so one bad ballot cannot sink the others.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from app import store
from app.db import Database
from app.errors import DomainError
from app.live import Hub

log = logging.getLogger("onsite_ballot.writer")

# Enough to absorb a room pressing submit together; small enough that a batch commits quickly.
MAX_BATCH = 256


class WriterUnavailable(RuntimeError):
    pass


class BallotWriter:
    def __init__(self, database: Database, *, k: int, hub: Hub | None = None) -> None:
        self._database = database
        self._k = k
        self._hub = hub
        self._stopped = False
        self._queue: asyncio.Queue[tuple[store.Submission, asyncio.Future[store.Outcome]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ballot-writer")

    async def stop(self) -> None:
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def submit(self, submission: store.Submission) -> store.Outcome:
        if self._task is None and not self._stopped:
            # A server without a lifespan (some test transports): start on the first ballot.
            self.start()
        if self._task is None or self._task.done():
            raise WriterUnavailable("the ballot writer is not running")
        future: asyncio.Future[store.Outcome] = asyncio.get_running_loop().create_future()
        await self._queue.put((submission, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                outcomes = await asyncio.to_thread(self._write, [sub for sub, _ in batch])
            except Exception as exc:
                # The exception's type only: its text could quote a token.
                log.error("ballot writer failed: %s", type(exc).__name__)
                outcomes = [store.Outcome(error=WriteFailed("internal"))] * len(batch)
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)

    def _write(self, submissions: list[store.Submission]) -> list[store.Outcome]:
        outcomes = self._write_batch(submissions)
        if self._hub is not None:
            changed = {outcome.meeting_id for outcome in outcomes if outcome.meeting_id is not None}
            try:
                self._hub.changed(changed)
            except Exception as exc:
                log.warning("could not notify dashboards: %s", type(exc).__name__)
        return outcomes

    def _write_batch(self, submissions: list[store.Submission]) -> list[store.Outcome]:
        try:
            with self._database.writing() as conn:
                return store.submit_batch(conn=conn, submissions=submissions, k=self._k)
        except Exception as exc:
            if len(submissions) == 1:
                raise
            log.warning("batch of %d failed (%s); retrying one by one", len(submissions), type(exc).__name__)
        outcomes = []
        for submission in submissions:
            try:
                with self._database.writing() as conn:
                    outcomes.extend(store.submit_batch(conn=conn, submissions=[submission], k=self._k))
            except Exception as exc:
                log.error("ballot write failed: %s", type(exc).__name__)
                outcomes.append(store.Outcome(error=WriteFailed("internal")))
        return outcomes


class WriteFailed(DomainError):
    """Nothing was stored; the phone keeps the ballot and may send it again."""

    status = 503
