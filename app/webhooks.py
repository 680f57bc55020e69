"""Webhook delivery: signing, the retry schedule, and the worker that empties the outbox.

The outbox (``webhook_delivery``) is written in the same transaction as the close or reopen that
causes it, so a crash loses no event. Each worker process runs one ``WebhookWorker``; a worker
claims due deliveries with ``SELECT … FOR UPDATE SKIP LOCKED`` (PostgreSQL) or under SQLite's
write lock, and a claim is a lease: if the worker dies, the delivery becomes due again when the
lease ends. Receivers see each event at least once and deduplicate by the delivery id.

Nothing but the result goes out or into the log: no ballot, no token, no response body.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import logging
import time
from contextlib import suppress
from dataclasses import dataclass

import httpx

from app import store
from app.db import Database
from app.settings import Settings

log = logging.getLogger("onsite_ballot.webhooks")

SIGNATURE_HEADER = "X-Onsite-Ballot-Signature"
TIMESTAMP_HEADER = "X-Onsite-Ballot-Timestamp"
DELIVERY_HEADER = "X-Onsite-Ballot-Delivery"
EVENT_HEADER = "X-Onsite-Ballot-Event"
USER_AGENT = "onsite-ballot-webhooks/1"
# How many due deliveries one worker sends at once: a slow receiver holds one slot, not the rest.
CLAIM_BATCH = 16
# A claim outlives the request it covers by this much, so that only a dead worker's claim expires.
LEASE_MARGIN_SECONDS = 30.0
# Receivers should refuse a signature older than this (README): a captured request cannot be replayed.
SIGNATURE_TOLERANCE_SECONDS = 300


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over "<timestamp>.<body>", as the signature header carries it."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str, timestamp: str, body: bytes, header: str, *, now: float | None = None
) -> bool:
    """What a receiver does; here for the tests and as the README's reference."""
    if not timestamp.isdigit() or abs((now or time.time()) - int(timestamp)) > SIGNATURE_TOLERANCE_SECONDS:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), header)


def signed_headers(
    secret: str, delivery_id: str, event: str, body: bytes, *, now: float | None = None
) -> dict[str, str]:
    timestamp = str(int(now or time.time()))
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: event,
        DELIVERY_HEADER: delivery_id,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }


def backoff(attempt: int, *, base: float, cap: float) -> float:
    """Seconds before the next try after the attempt-th failure: base, 2·base, 4·base, … up to cap."""
    return float(min(cap, base * 2 ** max(0, attempt - 1)))


@dataclass(frozen=True)
class Decision:
    status: str  # delivered, pending, failed
    next_attempt_at: dt.datetime | None


def decide(
    *, attempt: int, status_code: int | None, now: dt.datetime, retry_from: dt.datetime, settings: Settings
) -> Decision:
    """After an attempt: delivered on 2xx; else retry with backoff until the retry window ends."""
    if status_code is not None and 200 <= status_code < 300:
        return Decision("delivered", None)
    delay = backoff(attempt, base=settings.webhook_backoff_seconds, cap=settings.webhook_backoff_max_seconds)
    next_at = now + dt.timedelta(seconds=delay)
    if next_at > retry_from + dt.timedelta(hours=settings.webhook_retry_hours):
        return Decision("failed", None)
    return Decision("pending", next_at)


class WebhookWorker:
    def __init__(self, database: Database, settings: Settings) -> None:
        self._database = database
        self._settings = settings
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def lease_seconds(self) -> float:
        return self._settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="webhook-worker")

    def wake(self) -> None:
        """Look for due deliveries now rather than at the next poll. Safe from any thread."""
        if self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def stop(self) -> None:
        """Let a round in flight finish (bounded by the request timeout), then end."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), self._settings.webhook_timeout_seconds + 5)
        except TimeoutError:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def _run(self) -> None:
        timeout = httpx.Timeout(self._settings.webhook_timeout_seconds)
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            while not self._stopping:
                sent = 0
                try:
                    sent = await self.run_once(client)
                except Exception as exc:
                    # The type only: a message could quote a URL with credentials in it.
                    log.error("webhook round failed: %s", type(exc).__name__)
                if sent == 0 and not self._stopping:
                    with suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self._settings.webhook_poll_seconds)
                    self._wake.clear()

    async def run_once(self, client: httpx.AsyncClient) -> int:
        """Claim what is due, send it all at once, record each outcome. Returns how many were sent."""
        claimed = await asyncio.to_thread(self._claim)
        # One meeting's events reach one receiver in the order they happened (closed, reopened,
        # closed again) unless a retry intervenes; different receivers and meetings go in parallel.
        queues: dict[tuple[str, int], list[store.ClaimedDelivery]] = {}
        for delivery in sorted(claimed, key=lambda d: d.created_at):
            queues.setdefault((delivery.url, delivery.meeting_id), []).append(delivery)
        await asyncio.gather(*(self._deliver_in_order(client, queue) for queue in queues.values()))
        return len(claimed)

    async def _deliver_in_order(self, client: httpx.AsyncClient, queue: list[store.ClaimedDelivery]) -> None:
        for delivery in queue:
            await self._deliver(client, delivery)

    def _claim(self) -> list[store.ClaimedDelivery]:
        # A lock-free look first: on SQLite a claim takes the database's write lock.
        with self._database.reading() as conn:
            if not store.has_due_deliveries(conn=conn):
                return []
        with self._database.session() as session:
            return store.claim_deliveries(session=session, lease_seconds=self.lease_seconds, limit=CLAIM_BATCH)

    async def _deliver(self, client: httpx.AsyncClient, delivery: store.ClaimedDelivery) -> None:
        body = delivery.payload.encode("utf-8")
        headers = signed_headers(delivery.secret, delivery.id, delivery.event, body)
        status_code: int | None = None
        error: str | None = None
        started = time.monotonic()
        try:
            # Streamed and never read: a receiver's answer body is neither needed nor kept.
            async with client.stream("POST", delivery.url, content=body, headers=headers) as response:
                status_code = response.status_code
        except httpx.TimeoutException:
            error = "timeout"
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        duration_ms = int((time.monotonic() - started) * 1000)
        await asyncio.to_thread(self._record, delivery, status_code, error, duration_ms)

    def _record(
        self, delivery: store.ClaimedDelivery, status_code: int | None, error: str | None, duration_ms: int
    ) -> None:
        with self._database.session() as session:
            # The retry window and the backoff run on the database's clock, as the claim did.
            now = store.database_now(session)
            decision = decide(
                attempt=delivery.attempt,
                status_code=status_code,
                now=now,
                retry_from=_aware(delivery.retry_from),
                settings=self._settings,
            )
            store.record_delivery_attempt(
                session=session,
                delivery_id=delivery.id,
                attempt=delivery.attempt,
                status_code=status_code,
                error=error,
                duration_ms=duration_ms,
                now=now,
                status=decision.status,
                next_attempt_at=decision.next_attempt_at,
            )
        if decision.status == "failed":
            log.warning("webhook delivery %s given up after %d attempts", delivery.id, delivery.attempt)


def _aware(value: dt.datetime) -> dt.datetime:
    # SQLite hands datetimes back without a zone; they were written in UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
