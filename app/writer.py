"""The single writer of ballots: concurrent submits share one transaction and one fsync.

A commit per request pays one fsync per ballot; when 200 phones press submit together that
serialises on the disk. Here each request puts its ballot on a queue and waits; one task takes
everything waiting (and the rest of a burst still arriving, see _gather), spends the codes and
keeps the ballots sealed in one transaction on a worker thread, and answers every request only
after that transaction is on disk. A batch that fails as a whole is retried ballot by ballot, so
one bad ballot cannot sink the others; a batch stuck on a dead database connection is abandoned
by its watchdog and run once more on a fresh one.

Beside the batches the writer mixes: once 2K ballots of a meeting wait sealed, all but K of them
move into the box in a transaction of their own (app.store.box), at most once a second per meeting
unless many are waiting. The group is read, opened, scored and tallied on a thread of its own
(the mixer) while batches go on being written: on SQLite only its write, a few milliseconds, takes
a turn between two batches; on PostgreSQL the mixer's transaction runs beside the writer's.
Phones are answered first; mixing never holds up an answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import suppress

from sqlalchemy.exc import InterfaceError, OperationalError, TimeoutError as PoolTimeout

from app import store
from app.db import Database
from app.disclosure import mix_due
from app.disk import DiskState, is_disk_full
from app.errors import DomainError
from app.live import CHANNEL, Hub
from app.sealing import ServerKeys
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
# A meeting is mixed at most once per settings.mix_interval_seconds while it is open: each mix is
# a publication of the live figures and a transaction of its own, and once a second is as often
# as a dashboard can show; unless this many ballots wait sealed, as a mix's work grows with its
# size and a large one would hold up the next batch's phones.
MIX_AT_ONCE = 256

Waiting = tuple[store.Submission, asyncio.Future[store.Outcome]]


class WriterUnavailable(RuntimeError):
    pass


class BallotWriter:
    def __init__(
        self,
        database: Database,
        *,
        k: int,
        keys: ServerKeys,
        hub: Hub | None = None,
        mix_interval: float = 1.0,
        batch_seconds: float | None = None,
        disk: DiskState | None = None,
    ) -> None:
        self._database = database
        self._disk = disk or DiskState(None)
        self._k = k
        self._keys = keys
        self._hub = hub
        self._mix_interval = mix_interval
        self._working = False
        # meeting id -> when it may be mixed next; and when each was last mixed (loop time).
        self._due: dict[int, float] = {}
        self._mixed_at: dict[int, float] = {}
        self._stopped = False
        # The group being planned on the mixer's thread, and the meetings it is for.
        self._planning: asyncio.Task[list[store.MixPlan]] | None = None
        self._planned: list[int] = []
        # Ballots waiting, and None when a mix falls due (or a plan is ready) with no ballot to wake the writer.
        self._queue: asyncio.Queue[Waiting | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        # A batch that outlives this bound is on a dead connection: abandoned, and run once more.
        self._watchdog = Watchdog(
            seconds=batch_seconds or database.batch_seconds, name="ballot-writer", patience=STALLED_BATCH_SECONDS
        )
        # Planning a group only reads; one stuck on a dead connection is abandoned the same way.
        self._mixer = Watchdog(seconds=batch_seconds or database.batch_seconds, name="ballot-mixer")

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
        if self._planning is not None:
            self._planning.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await self._planning
            self._planning = None
            self._planned = []
        self._watchdog.close()
        self._mixer.close()

    async def submit(self, submission: store.Submission) -> store.Outcome:
        if self._task is None and not self._stopped:
            # A server without a lifespan (some test transports): start on the first ballot.
            self.start()
        if self._task is None or self._task.done():
            raise WriterUnavailable("the ballot writer is not running")
        future: asyncio.Future[store.Outcome] = asyncio.get_running_loop().create_future()
        await self._queue.put((submission, future))
        return await future

    async def idle(self) -> None:
        """Return once nothing waits: no ballot queued, no batch being written, no mix due now.

        For tests and for an orderly stop; a mix planned for later (the interval) does not count."""
        loop = asyncio.get_running_loop()
        while (
            not self._queue.empty()
            or self._working
            or self._planning is not None
            or any(when <= loop.time() for when in self._due.values())
        ):
            await asyncio.sleep(0.002)

    async def _gather(self) -> list[Waiting]:
        """The next batch: what is waiting, and the rest of a burst that is still arriving.

        A burst of submits reaches the queue one request at a time, as the event loop parses
        them and answers the last batch's phones. Taking only what is already there would cut
        each burst into several small batches, and a batch has a fixed cost (its statements, its
        commit) near that of 20 ballots. So the writer waits in slices of GATHER_SLICE_SECONDS
        for as long as the loop is busy (a slice ends late) or a slice brings more ballots, never
        longer than GATHER_SECONDS in all. A lone ballot on a quiet server waits one slice.
        An empty batch: a mix fell due with no ballot to wake the writer (see _schedule).
        """
        loop = asyncio.get_running_loop()
        first = await self._queue.get()
        self._working = True
        if first is None:
            return []
        batch = [first]
        deadline = loop.time() + GATHER_SECONDS
        while True:
            while len(batch) < MAX_BATCH and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is not None:
                    batch.append(item)
            if len(batch) >= MAX_BATCH or loop.time() >= deadline:
                return batch
            before, started = len(batch), loop.time()
            await asyncio.sleep(GATHER_SLICE_SECONDS)
            busy = loop.time() - started > 2 * GATHER_SLICE_SECONDS
            if not busy and self._queue.empty() and len(batch) == before:
                return batch

    async def _run(self) -> None:
        try:
            await self._watchdog.run(lambda: self._mix(self._recover()))
        except Exception as exc:
            log.error("mixing after a restart failed: %s", type(exc).__name__)
        while True:
            self._working = False
            batch = await self._gather()
            if batch:
                await self._answer(batch)
            if self._planning is not None and self._planning.done():
                await self._apply_plans()
            if self._planning is None:
                self._start_planning()

    def _start_planning(self) -> None:
        """Plan the meetings whose group is due, on the mixer's thread; the writer goes on meanwhile."""
        now = asyncio.get_running_loop().time()
        ready = sorted(meeting for meeting, when in self._due.items() if when <= now)
        if not ready:
            return
        for meeting in ready:
            del self._due[meeting]
            self._mixed_at[meeting] = now
        self._planned = ready
        self._planning = asyncio.create_task(self._mixer.run(lambda: self._plan(ready)), name="ballot-mixer")
        # Wake the writer when the plan is ready, should no ballot come to do it.
        self._planning.add_done_callback(lambda _: self._queue.put_nowait(None))

    async def _apply_plans(self) -> None:
        assert self._planning is not None
        task, meetings = self._planning, self._planned
        self._planning, self._planned = None, []
        try:
            plans = task.result()
            waiting = await self._watchdog.run(lambda: self._apply(plans)) if plans else {}
        except Exception as exc:
            # The ballots stay sealed and safe; the meetings' next batch schedules them again.
            log.error("mixing failed: %s", type(exc).__name__)
            return
        now = asyncio.get_running_loop().time()
        for meeting in meetings:
            self._mixed_at[meeting] = now
        # What a group left waiting is due again as after any batch; a plan that was not written
        # (another worker mixed the meeting first) is looked at again after the interval.
        skipped = {plan.meeting_id for plan in plans} - set(waiting)
        self._schedule(waiting | {meeting: 2 * self._k for meeting in skipped})

    async def _answer(self, batch: list[Waiting]) -> None:
        try:
            spent = await self._store([sub for sub, _ in batch])
            self._disk.wrote()
        except Exception as exc:
            # The exception's type only: its text could quote a token.
            log.error("ballot writer failed: %s", type(exc).__name__)
            reason = "internal"
            if is_disk_full(exc):
                self._disk.failed()
                reason = "disk_full"
            spent = store.Spent([store.Outcome(error=WriteFailed(reason))] * len(batch), {})
        for (_, future), outcome in zip(batch, spent.outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)
        self._schedule(spent.sealed)

    async def _store(self, submissions: list[store.Submission]) -> store.Spent:
        """Write a batch on the watchdog's thread. A batch abandoned on a dead connection is run once
        more, on a fresh one: a code its first run spent (if that run committed) answers "already
        counted", so each ballot is stored once and each phone told once."""
        try:
            return await self._watchdog.run(lambda: self._write(submissions))
        except Stuck:
            log.warning("a batch of %d ballots was abandoned; running it again", len(submissions))
        return await self._watchdog.run(lambda: self._write(submissions))

    def _schedule(self, sealed: dict[int, int]) -> None:
        """Note the meetings that have a group to mix, and when they may be mixed."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        for meeting, waiting in sealed.items():
            # A meeting being planned counts ballots the plan is about to move: it is scheduled
            # again once the plan is written, from what is left.
            if not mix_due(waiting, k=self._k) or meeting in self._planned:
                continue
            if waiting >= MIX_AT_ONCE:
                self._due[meeting] = now
                continue
            if meeting in self._due:
                continue
            when = self._mixed_at.get(meeting, now - self._mix_interval) + self._mix_interval
            self._due[meeting] = when
            if when > now:
                loop.call_at(when, self._queue.put_nowait, None)

    def _recover(self) -> list[int]:
        """Meetings with a group due when the writer starts: ballots sealed before a crash or a stop."""
        with self._database.reading() as conn:
            return store.meetings_due(conn=conn, k=self._k)

    def _mix(self, meetings: list[int]) -> None:
        """Mix the due meetings, all in one transaction (one commit: phones wait for one, not one per
        meeting), and tell their dashboards. If that fails, each meeting in one of its own, so that
        one meeting's trouble does not keep the others' figures still. Safe to run again after an
        abandoned run: it mixes what is still sealed, if a group is still due."""
        try:
            mixed = self._mix_together(meetings)
        except Exception as exc:
            if len(meetings) == 1:
                raise
            log.warning("mixing %d meetings together failed (%s); mixing each alone", len(meetings),
                        type(exc).__name__)
            mixed = set()
            for meeting in meetings:
                try:
                    mixed |= self._mix_together([meeting])
                except Exception as error:
                    log.error("mixing a meeting failed: %s", type(error).__name__)
        if mixed and self._hub is not None and not self._hub.cross_worker:
            self._hub.changed(mixed)

    def _mix_together(self, meetings: list[int]) -> set[int]:
        mixed = set()
        with self._database.writing() as conn:
            for meeting in meetings:
                if store.mix(conn=conn, meeting_id=meeting, keys=self._keys, k=self._k):
                    mixed.add(meeting)
            if mixed and self._hub is not None and self._hub.cross_worker:
                self._hub.announce(conn, mixed)
        return mixed

    def _plan(self, meetings: list[int]) -> list[store.MixPlan]:
        """On the mixer's thread. SQLite, whose writers take turns for the whole database: read and
        compute the groups, for the writer to write between two batches. PostgreSQL: mix outright, in
        a transaction of the mixer's own beside the writer's; the row locks see to it that the
        workers never mix the same ballots (the second waits for the first's commit, then finds
        what is left), where two plans made at once would have one thrown away."""
        if not self._database.is_sqlite:
            # Each meeting in a transaction of its own: one holding a meeting's counts while it
            # mixes the next would hold up that meeting's batches meanwhile.
            for meeting in meetings:
                try:
                    self._mix([meeting])
                except Exception as exc:
                    # Its ballots stay sealed and safe; its next batch schedules it again.
                    log.error("mixing a meeting failed: %s", type(exc).__name__)
            return []
        plans = []
        with self._database.reading() as conn:
            for meeting in meetings:
                plan = store.plan_mix(conn=conn, meeting_id=meeting, keys=self._keys, k=self._k)
                if plan is not None:
                    plans.append(plan)
        return plans

    def _apply(self, plans: list[store.MixPlan]) -> dict[int, int]:
        with self._database.writing() as conn:
            waiting = store.apply_mixes(conn=conn, plans=plans)
            if waiting and self._hub is not None and self._hub.cross_worker:
                self._hub.announce(conn, waiting)
        if waiting and self._hub is not None and not self._hub.cross_worker:
            self._hub.changed(set(waiting))
        return waiting

    def _write(self, submissions: list[store.Submission]) -> store.Spent:
        started = time.monotonic()
        spent = self._write_batch(submissions)
        seconds = time.monotonic() - started
        if seconds > SLOW_BATCH_SECONDS:
            # Phones wait this long: worth a line for whoever watches the server (sizes only).
            log.warning("a batch of %d ballots took %.0f ms to store", len(submissions), seconds * 1000)
        if self._hub is not None and not self._hub.cross_worker:
            # In this process only, and after the commit: a dashboard told now reads the new turnout.
            self._hub.changed(_changed(spent.outcomes))
        return spent

    def _write_batch(self, submissions: list[store.Submission]) -> store.Spent:
        try:
            return self._commit(submissions)
        except Exception as exc:
            if len(submissions) == 1 or _database_unavailable(exc):
                raise
            log.warning("batch of %d failed (%s); retrying one by one", len(submissions), type(exc).__name__)
        outcomes: list[store.Outcome] = []
        sealed: dict[int, int] = {}
        for submission in submissions:
            try:
                one = self._commit([submission])
            except Exception as exc:
                log.error("ballot write failed: %s", type(exc).__name__)
                outcomes.append(store.Outcome(error=WriteFailed("internal")))
            else:
                outcomes.extend(one.outcomes)
                sealed.update(one.sealed)
        return store.Spent(outcomes, sealed)

    def _commit(self, submissions: list[store.Submission]) -> store.Spent:
        # PostgreSQL: every worker's dashboards hear of it when this transaction commits, not before.
        notify = CHANNEL if self._hub is not None and self._hub.cross_worker else None
        with self._database.writing() as conn:
            return store.submit_batch(conn=conn, submissions=submissions, keys=self._keys, notify=notify)


# How often a scrub that could not finish (app.store.box.scrub) is tried again.
SCRUB_RETRY_SECONDS = 60.0


async def keep_scrubbing(database: Database) -> None:
    """Scrub once at start (a close before a crash may not have), then again whenever a close's
    scrub could not finish, until one does."""
    store.box.scrub_wanted = True
    while True:
        if store.box.scrub_wanted:
            try:
                if await asyncio.to_thread(store.scrub, database.write):
                    store.box.scrub_wanted = False
            except Exception as exc:
                log.error("scrub failed: %s", type(exc).__name__)
        await asyncio.sleep(SCRUB_RETRY_SECONDS)


def _database_unavailable(exc: Exception) -> bool:
    """The database, not a ballot, failed (a lost connection, a lock held too long, a full disk):
    the same would fail each ballot again, so the batch's phones hear 503 at once."""
    return isinstance(exc, (OperationalError, InterfaceError, PoolTimeout, Abandoned))


def _changed(outcomes: list[store.Outcome]) -> set[int]:
    return {outcome.meeting_id for outcome in outcomes if outcome.meeting_id is not None}


class WriteFailed(DomainError):
    """Nothing was stored; the phone keeps the ballot and may send it again."""

    status = 503
