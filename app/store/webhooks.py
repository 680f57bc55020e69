"""Webhooks: the endpoints an administrator registers, the outbox a state change writes to in
its own transaction, and the delivery log the worker (app.webhooks) claims from and writes to."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import Connection, select, update
from sqlmodel import Session, col

from app.errors import Conflict, NotFound
from app.export import result_record
from app.schemas import WebhookBody, WebhookEvent
from app.store.base import audit
from app.store.clock import database_now
from app.tables import Category, Meeting, Result, WebhookAttempt, WebhookDelivery, WebhookEndpoint

DeliveryStatus = Literal["pending", "delivered", "failed", "cancelled"]


def enqueue_result_event(
    *, session: Session, meeting: Meeting, event: WebhookEvent, result: Result | None = None
) -> int:
    """One outbox row per subscribed endpoint, in the caller's transaction: the event is stored
    exactly when the state change is. Without ``result``, the meeting's latest one."""
    endpoints = [
        endpoint
        for endpoint in session.scalars(
            select(WebhookEndpoint).where(col(WebhookEndpoint.active).is_(True)).order_by(col(WebhookEndpoint.id))
        )
        if event in endpoint.events.split()
    ]
    if not endpoints:
        return 0
    if result is None:
        result = session.scalars(
            select(Result).where(col(Result.meeting_id) == meeting.id).order_by(col(Result.version).desc())
        ).first()
        assert result is not None, "only a meeting closed before has events"
    category = session.get(Category, result.category)
    assert category is not None
    record = result_record(meeting=meeting, category=category, result=result)
    now = database_now(session)
    for endpoint in endpoints:
        delivery_id = str(uuid.uuid4())
        body = WebhookBody(event=event, delivery_id=delivery_id, occurred_at=now, result=record)
        session.add(
            WebhookDelivery(
                id=delivery_id,
                endpoint_id=endpoint.id,  # type: ignore[arg-type]
                event=event,
                meeting_id=meeting.id,  # type: ignore[arg-type]
                result_version=result.version,
                payload=body.model_dump_json(),
                next_attempt_at=now,
                created_at=now,
                retry_from=now,
            )
        )
    return len(endpoints)


def _url_for_log(url: str) -> str:
    # A URL may carry a password (https://user:pw@host/…); the audit log gets the host and path only.
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.hostname or "", parts.path, "", ""))


def create_webhook(*, session: Session, actor: str, url: str, secret: str, events: Sequence[str]) -> WebhookEndpoint:
    endpoint = WebhookEndpoint(url=url, secret=secret, events=" ".join(dict.fromkeys(events)))
    session.add(endpoint)
    session.flush()
    audit(
        session=session,
        actor=actor,
        action="webhook.create",
        detail={"id": endpoint.id, "url": _url_for_log(url), "events": endpoint.events},
    )
    session.commit()
    return endpoint


def list_webhooks(*, session: Session) -> list[WebhookEndpoint]:
    query = select(WebhookEndpoint).where(col(WebhookEndpoint.active).is_(True)).order_by(col(WebhookEndpoint.id))
    return list(session.scalars(query))


def get_webhook(*, session: Session, webhook_id: int) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, webhook_id)
    if endpoint is None or not endpoint.active:
        raise NotFound("webhook_not_found", id=webhook_id)
    return endpoint


def delete_webhook(*, session: Session, actor: str, webhook_id: int) -> None:
    """Stop sending to an endpoint. Its delivery log stays; its secret is erased."""
    endpoint = get_webhook(session=session, webhook_id=webhook_id)
    endpoint.active = False
    endpoint.secret = ""
    session.add(endpoint)
    session.execute(
        update(WebhookDelivery)
        .where(col(WebhookDelivery.endpoint_id) == webhook_id, col(WebhookDelivery.status) == "pending")
        .values(status="cancelled")
    )
    audit(session=session, actor=actor, action="webhook.delete", detail={"id": webhook_id})
    session.commit()


@dataclass(frozen=True)
class DeliveryLog:
    delivery: WebhookDelivery
    attempts: list[WebhookAttempt]


def _with_attempts(session: Session, deliveries: Sequence[WebhookDelivery]) -> list[DeliveryLog]:
    attempts: dict[str, list[WebhookAttempt]] = {d.id: [] for d in deliveries}
    if deliveries:
        for attempt in session.scalars(
            select(WebhookAttempt)
            .where(col(WebhookAttempt.delivery_id).in_(list(attempts)))
            .order_by(col(WebhookAttempt.id))
        ):
            attempts[attempt.delivery_id].append(attempt)
    return [DeliveryLog(d, attempts[d.id]) for d in deliveries]


def list_deliveries(*, session: Session, webhook_id: int, limit: int = 100) -> list[DeliveryLog]:
    """An endpoint's deliveries, newest first, each with its attempts."""
    if session.get(WebhookEndpoint, webhook_id) is None:
        raise NotFound("webhook_not_found", id=webhook_id)
    deliveries = list(
        session.scalars(
            select(WebhookDelivery)
            .where(col(WebhookDelivery.endpoint_id) == webhook_id)
            .order_by(col(WebhookDelivery.created_at).desc(), col(WebhookDelivery.id))
            .limit(limit)
        )
    )
    return _with_attempts(session, deliveries)


def get_delivery(*, session: Session, delivery_id: str) -> DeliveryLog:
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        raise NotFound("webhook_delivery_not_found", id=delivery_id)
    return _with_attempts(session, [delivery])[0]


def resend_delivery(*, session: Session, actor: str, delivery_id: str) -> DeliveryLog:
    """Send a delivery again, with the same id and body: a receiver that has it already ignores it."""
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        raise NotFound("webhook_delivery_not_found", id=delivery_id)
    endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
    if endpoint is None or not endpoint.active:
        raise Conflict("webhook_deleted", id=delivery.endpoint_id)
    now = database_now(session)
    delivery.status = "pending"
    delivery.next_attempt_at = now
    delivery.retry_from = now
    session.add(delivery)
    audit(
        session=session,
        actor=actor,
        action="webhook.resend",
        meeting_id=delivery.meeting_id,
        detail={"delivery": delivery_id},
    )
    session.commit()
    return get_delivery(session=session, delivery_id=delivery_id)


@dataclass(frozen=True)
class ClaimedDelivery:
    id: str
    url: str
    secret: str
    event: str
    payload: str
    attempt: int
    retry_from: dt.datetime
    meeting_id: int
    created_at: dt.datetime


def has_due_deliveries(*, conn: Session | Connection) -> bool:
    """A read that takes no lock: workers claim (and lock) only when something is due."""
    now = database_now(conn)
    found = conn.execute(
        select(col(WebhookDelivery.id))
        .where(col(WebhookDelivery.status) == "pending", col(WebhookDelivery.next_attempt_at) <= now)
        .limit(1)
    ).first()
    return found is not None


def claim_deliveries(*, session: Session, lease_seconds: float, limit: int) -> list[ClaimedDelivery]:
    """Take up to ``limit`` due deliveries for this worker until the lease ends.

    Due and lease are read on the database's clock (store.clock): a worker whose host's clock
    jumps ahead must not see another's lease as ended and send the same delivery in parallel.

    FOR UPDATE SKIP LOCKED: workers on PostgreSQL claim disjoint rows without waiting for each
    other. SQLite has no row locks; its write transaction (BEGIN IMMEDIATE) serialises claims.
    """
    now = database_now(session)
    rows = list(
        session.scalars(
            select(WebhookDelivery)
            .where(col(WebhookDelivery.status) == "pending", col(WebhookDelivery.next_attempt_at) <= now)
            .order_by(col(WebhookDelivery.next_attempt_at), col(WebhookDelivery.id))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if not rows:
        session.rollback()
        return []
    endpoints = {
        endpoint.id: endpoint
        for endpoint in session.scalars(
            select(WebhookEndpoint).where(col(WebhookEndpoint.id).in_({row.endpoint_id for row in rows}))
        )
    }
    lease_end = now + dt.timedelta(seconds=lease_seconds)
    claimed = []
    for row in rows:
        row.attempts += 1
        row.next_attempt_at = lease_end
        session.add(row)
        endpoint = endpoints[row.endpoint_id]
        claimed.append(
            ClaimedDelivery(
                row.id,
                endpoint.url,
                endpoint.secret,
                row.event,
                row.payload,
                row.attempts,
                row.retry_from,
                row.meeting_id,
                row.created_at,
            )
        )
    session.commit()
    return claimed


def record_delivery_attempt(
    *,
    session: Session,
    delivery_id: str,
    attempt: int,
    status_code: int | None,
    error: str | None,
    duration_ms: int,
    now: dt.datetime,
    status: str,
    next_attempt_at: dt.datetime | None,
) -> None:
    """Log an attempt and move the schedule on. ``now`` is the database's (``database_now``), read in
    this session before deciding, so that the retry window is measured on the clock it began on."""
    session.add(
        WebhookAttempt(
            delivery_id=delivery_id,
            number=attempt,
            at=now,
            status_code=status_code,
            error=error,
            duration_ms=duration_ms,
        )
    )
    target = update(WebhookDelivery).where(col(WebhookDelivery.id) == delivery_id)
    if status == "delivered":
        # A 2xx is final whoever sent it, even a worker whose lease had run out meanwhile.
        session.execute(
            target.where(col(WebhookDelivery.status).in_(["pending", "failed"])).values(
                status="delivered", delivered_at=now, last_status_code=status_code
            )
        )
    else:
        # Only the holder of the latest claim moves the schedule on.
        session.execute(
            target.where(col(WebhookDelivery.attempts) == attempt, col(WebhookDelivery.status) == "pending").values(
                status=status, next_attempt_at=next_attempt_at or now, last_status_code=status_code
            )
        )
    session.commit()
