"""A bound on blocking database work that runs on a thread: the writer's batches, the readiness probe.

A database connection can die without a word: a switch or NAT drops it, or the host behind it
stops, and no reset ever comes. A thread waiting on such a connection waits for hours (Linux gives
up on an idle peer after about two), and when that thread is the ballot writer, nobody can vote.
``Watchdog.run`` runs one piece of work on a thread of its own and waits for it at most
``seconds``. Past that, the work is abandoned: the connection it uses is cut (its socket shut down,
so the blocked call returns with an error and the pool discards the connection; on PostgreSQL the
server's side of it is ended too, which releases its row locks), the thread is left to finish on
its own, and the caller hears ``Stuck`` and may run the work again on a fresh connection.

The work never handles the watch itself: app.db attaches every connection that a thread checks out
while it runs under a watch (see ``app.db.watching``). Whether an abandoned transaction committed
is unknown to the caller; work that is run again must therefore find out from the database (the
writer does: a code spent by the abandoned batch answers "already counted").
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

log = logging.getLogger("onsite_ballot.watchdog")

T = TypeVar("T")

# How long cutting a connection may take (PostgreSQL: a new connection ends the old server
# process): bounded by the connect timeout, so a database that cannot be reached does not hold the
# caller up further.
CUT_SECONDS = 10.0


class Stuck(RuntimeError):
    """The work overran its bound and was abandoned; the connection it held was cut."""


class Abandoned(RuntimeError):
    """Raised in an abandoned thread that asks for another connection: it has nothing left to do."""


class Watch:
    """The connection one piece of work holds, and how to cut it; shared by its thread and the loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cut: Callable[[], None] | None = None
        self._done = False
        self.abandoned = False

    def attach(self, cut: Callable[[], None]) -> None:
        """Called in the work's thread for each connection it checks out (app.db)."""
        with self._lock:
            if self.abandoned:
                raise Abandoned("this work was abandoned by its watchdog")
            self._cut = cut

    def finish(self) -> None:
        with self._lock:
            self._done = True
            self._cut = None

    def abandon(self) -> Callable[[], None] | None:
        """Mark the work abandoned; returns how to cut its connection, unless it has just finished."""
        with self._lock:
            self.abandoned = True
            return None if self._done else self._cut


_current = threading.local()


def current_watch() -> Watch | None:
    """The watch of the work running in this thread, if any."""
    return getattr(_current, "watch", None)


def _watched(watch: Watch, work: Callable[[], T]) -> T:
    _current.watch = watch
    try:
        return work()
    finally:
        watch.finish()
        _current.watch = None


class Watchdog:
    """Runs blocking work on a thread of its own, one piece at a time, each for at most ``seconds``."""

    def __init__(self, *, seconds: float, name: str, patience: float | None = None) -> None:
        self.seconds = seconds
        self.name = name
        # Work running longer than this is reported unhealthy before it is abandoned at ``seconds``.
        self.patience = seconds if patience is None else min(patience, seconds)
        self._executor: ThreadPoolExecutor | None = None  # made on first use, and again after close()
        self._started: float | None = None
        self.abandoned = 0  # how many pieces of work were abandoned since start
        self.last_ok: bool = True  # the last piece of work finished within its bound

    @property
    def stalled(self) -> bool:
        """A piece of work is running now and has passed its patience."""
        started = self._started
        return started is not None and time.monotonic() - started > self.patience

    @property
    def healthy(self) -> bool:
        return self.last_ok and not self.stalled

    async def run(self, work: Callable[[], T]) -> T:
        watch = Watch()
        loop = asyncio.get_running_loop()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=self.name)
        future = loop.run_in_executor(self._executor, _watched, watch, work)
        self._started = time.monotonic()
        try:
            done, _ = await asyncio.wait([future], timeout=self.seconds)
        finally:
            self._started = None
        if not done:
            self.last_ok = False
            await self._abandon(watch, future)
            raise Stuck(f"{self.name}: no answer within {self.seconds:g} s")
        if future.cancelled():  # queued behind work that was abandoned, and dropped with its thread
            raise Stuck(f"{self.name}: dropped behind abandoned work")
        self.last_ok = True  # an answer, or an error, within the bound: the database is talking
        return future.result()

    async def _abandon(self, watch: Watch, future: asyncio.Future[T]) -> None:
        self.abandoned += 1
        # The thread may stay blocked for a while yet: later work gets a thread of its own.
        self.close()
        future.add_done_callback(_ignore_outcome)
        cut = watch.abandon()
        log.error("%s: no answer from the database within %g s; its connection was cut", self.name, self.seconds)
        if cut is None:
            return
        try:
            await asyncio.wait_for(asyncio.to_thread(cut), CUT_SECONDS)
        except Exception as exc:
            log.warning("%s: cutting the connection failed (%s)", self.name, type(exc).__name__)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


def _ignore_outcome(future: asyncio.Future[Any]) -> None:
    # Nobody waits for abandoned work: take its exception, so that asyncio does not report it.
    if not future.cancelled():
        future.exception()
