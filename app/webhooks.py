"""Webhook delivery: signing, the retry schedule, and the worker that empties the outbox.

The outbox (``webhook_delivery``) is written in the same transaction as the close or reopen that
causes it, so a crash loses no event. Each worker process runs one ``WebhookWorker``; a worker
claims due deliveries with ``SELECT … FOR UPDATE SKIP LOCKED`` (PostgreSQL) or under SQLite's
write lock, and a claim is a lease: if the worker dies, the delivery becomes due again when the
lease ends. Receivers see each event at least once and deduplicate by the delivery id.

Nothing but the result goes out or into the log: no ballot, no token, no response body.

A delivery goes only to the public internet, unless its host is allowed by name
(``ONSITE_BALLOT_WEBHOOK_ALLOWED_HOSTS``: a main scoring system on the intranet is normal). Otherwise
an administrator's URL, the delivery log and "send again" would make a port scanner of this server
(``http://127.0.0.1:5432/``, ``http://169.254.169.254/…``). The host is checked when an endpoint is
registered and again at every connection, after DNS, and the connection goes to the very address
that was checked: a name cannot resolve to a public address for the check and to 127.0.0.1 for the
request.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import ipaddress
import logging
import socket
import time
from collections.abc import Collection, Iterable
from contextlib import suppress
from dataclasses import dataclass
from urllib.parse import urlsplit

import anyio
import httpcore
import httpx

from app import store
from app.db import Database
from app.errors import Invalid
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


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# IPv6 prefixes that carry an IPv4 address a gateway will connect to: NAT64 (RFC 6052).
NAT64 = ipaddress.ip_network("64:ff9b::/96")


def refused_address(address: IPAddress) -> bool:
    """Not an address on the public internet: loopback, private, link-local (the cloud metadata
    service), carrier-grade NAT, unspecified, documentation, multicast; or IPv4 of those in IPv6."""
    embedded: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            embedded.append(address.ipv4_mapped)
        if address.sixtofour is not None:
            embedded.append(address.sixtofour)
        if address in NAT64:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return any(not ip.is_global or ip.is_multicast for ip in embedded)


class AddressRefused(Exception):
    """A webhook host that points where deliveries may not go; carries the host and the address."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(host)
        self.host, self.address = host, address


def allowed_by_name(host: str, allowed: Collection[str]) -> bool:
    return host.lower().rstrip(".") in allowed


def vetted(host: str, addresses: Iterable[str], allowed: Collection[str]) -> str:
    """The address to connect to: the first one, once every address the host resolves to is fine."""
    candidates = list(addresses)
    if not allowed_by_name(host, allowed):
        for candidate in candidates:
            if refused_address(ipaddress.ip_address(candidate.split("%", 1)[0])):
                raise AddressRefused(host, candidate)
    return candidates[0]


def check_destination(url: str, allowed: Collection[str]) -> None:
    """At registration: Invalid("webhook_address_refused") for a host that resolves where deliveries
    may not go. A name that does not resolve here is let through: it is checked again when sent."""
    host = urlsplit(url).hostname or ""
    if allowed_by_name(host, allowed):
        return
    try:
        found = {str(info[4][0]) for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)}
    except (OSError, UnicodeError):
        return
    try:
        vetted(host, sorted(found), allowed)
    except AddressRefused as refused:
        raise Invalid("webhook_address_refused", host=refused.host, address=refused.address) from None


class CheckedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the check in ``connect_tcp``: resolve, check every address,
    connect to the checked one. TLS still names (and verifies) the host, not the address."""

    def __init__(self, allowed: Collection[str]) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allowed = allowed

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve: {type(exc).__name__}") from None
        address = vetted(host, [str(info[4][0]) for info in infos], self._allowed)
        return await self._inner.connect_tcp(
            address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused(path, "unix socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class CheckedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport on a connection pool whose connections are checked (CheckedBackend).
    httpx takes no network backend of its own; its pool is httpcore's, which does."""

    def __init__(self, allowed: Collection[str]) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False), network_backend=CheckedBackend(allowed)
        )


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
        transport = CheckedTransport(self._settings.allowed_webhook_hosts)
        async with httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, trust_env=False, transport=transport
        ) as client:
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
        except AddressRefused:
            error = "address_refused"
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
