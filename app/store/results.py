"""Results for the main scoring system, the year overview, audit files and webhook deliveries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import Connection, and_, func, select, update
from sqlmodel import Session, col

from app.disclosure import Breakdown
from app.errors import Conflict, Invalid, NotFound
from app.export import result_record
from app.export_schema import ResultRecord
from app.figures import StoredBallot, breakdown_from_json
from app.models import (
    Category,
    Meeting,
    Result,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from app.overview import UnitYears, window as review_window
from app.store.ballot_templates import get_template
from app.store.base import audit
from app.store.box import meeting_ballots
from app.store.clock import database_now
from app.store.meetings import get_meeting, latest_result, results_of
from app.store.units import _category_keys, categories, find_unit, list_units, review_years
from app.templates import BallotTemplate

DeliveryStatus = Literal["pending", "delivered", "failed", "cancelled"]


def _latest_results() -> Any:
    """Each closed meeting's latest result, with its meeting and the category the result names
    (frozen at close, like the unit's code and name: store.close_meeting)."""
    latest = (
        select(col(Result.meeting_id).label("meeting_id"), func.max(col(Result.version)).label("version"))
        .group_by(col(Result.meeting_id))
        .subquery()
    )
    return (
        select(Result, Meeting, Category)
        .join(latest, and_(col(Result.meeting_id) == latest.c.meeting_id, col(Result.version) == latest.c.version))
        .join(Meeting, col(Meeting.id) == col(Result.meeting_id))
        .join(Category, col(Category.key) == col(Result.category))
        .where(col(Meeting.state) == "closed")
    )


def check_result_filters(*, session: Session, category: str | None = None, unit: str | None = None) -> None:
    keys = _category_keys(session)
    if category is not None and category not in keys:
        raise Invalid("unit_unknown_category", category=category, allowed="/".join(keys))
    if unit is not None and find_unit(session=session, code=unit) is None:
        raise NotFound("unit_not_found", code=unit)


def list_results(
    *,
    session: Session,
    year: int | None = None,
    category: str | None = None,
    unit: str | None = None,
    since: dt.datetime | None = None,
    after: int | None = None,
    limit: int | None = None,
) -> list[ResultRecord]:
    """Every closed meeting's latest result, in the order of closing (see ``results_page``)."""
    numbered = results_page(
        session=session, year=year, category=category, unit=unit, since=since, after=after, limit=limit
    )
    return [record for _, record in numbered]


def results_page(
    *,
    session: Session,
    year: int | None = None,
    category: str | None = None,
    unit: str | None = None,
    since: dt.datetime | None = None,
    after: int | None = None,
    limit: int | None = None,
) -> list[tuple[int, ResultRecord]]:
    """Every closed meeting's latest result in the order the results were frozen, each with its
    number (what a cursor after it holds).

    The order is that of a number given at each close under a lock held to its commit
    (store.clock.next_result_number), never a clock: a client paging with a cursor neither repeats
    nor skips a result when more meetings close meanwhile, whichever host closed them. A reopened
    meeting leaves the list until it closes again; it then returns as a new version with a later
    number, and a later close time (the database's clock), which ``since`` finds.
    """
    check_result_filters(session=session, category=category, unit=unit)
    query = _latest_results()
    if year is not None:
        query = query.where(col(Meeting.year) == year)
    if category is not None:
        query = query.where(col(Result.category) == category)
    if unit is not None:
        query = query.where(col(Result.unit_code) == unit)
    if since is not None:
        query = query.where(col(Result.created_at) > since)
    if after is not None:
        query = query.where(col(Result.seq) > after)
    query = query.order_by(col(Result.seq))
    if limit is not None:
        query = query.limit(limit)
    return [
        (result.seq, result_record(meeting=meeting, category=category_row, result=result))
        for result, meeting, category_row in session.execute(query).all()
    ]


def unit_year_result(*, session: Session, unit_code: str, year: int) -> ResultRecord:
    """The unit's on-site result of the year: the latest version of its one counted review (only one
    meeting per unit and year can be closed at a time; before that rule, the latest one counts)."""
    records = list_results(session=session, unit=unit_code, year=year)
    if not records:
        raise NotFound("results_none", unit=unit_code, year=year)
    return max(records, key=lambda r: (r.meeting_date, r.meeting_id))


def overview_units(*, session: Session, year: int, category: str | None = None) -> list[UnitYears]:
    check_result_filters(session=session, category=category)
    years = review_window(year)
    reviewed: dict[int, set[int]] = {}
    ever: set[int] = set()
    for unit_id, meeting_year in session.execute(
        select(col(Meeting.unit_id), col(Meeting.year)).where(col(Meeting.state) == "closed").distinct()
    ).all():
        ever.add(unit_id)
        reviewed.setdefault(unit_id, set()).add(meeting_year)
    busy = set(session.scalars(
        select(col(Meeting.unit_id)).where(col(Meeting.state).in_(["draft", "open"]), col(Meeting.year).in_(years))
    ))
    latest: dict[str, ResultRecord] = {}
    for record in list_results(session=session, year=year, category=category):
        held = latest.get(record.unit_code)
        if held is None or (record.meeting_date, record.meeting_id) > (held.meeting_date, held.meeting_id):
            latest[record.unit_code] = record
    names = {c.key: c.name for c in categories(session=session)}
    units = list_units(session=session, category=category)
    recorded = review_years(session=session, unit_ids=[unit.id for unit in units])  # type: ignore[misc]
    return [
        UnitYears(
            code=unit.code,
            name=unit.name,
            category=unit.category_key,
            category_name=names[unit.category_key],
            years_reviewed=frozenset(reviewed.get(unit.id, set()) | set(recorded[unit.id])),  # type: ignore[arg-type,index]
            result=latest.get(unit.code),
            known_since=unit.created_at.year,
            in_progress=unit.id in busy,
            ever_reviewed=unit.id in ever or bool(recorded[unit.id]),  # type: ignore[index]
        )
        for unit in units
    ]


@dataclass(frozen=True)
class AuditMaterial:
    meeting: Meeting
    result: Result
    template: BallotTemplate
    ballots: list[StoredBallot]
    earlier: list[Breakdown]


def audit_material(*, session: Session, actor: str, meeting_id: int) -> AuditMaterial:
    """What the audit export of a closed meeting is made of; the export itself is audited."""
    result = latest_result(session=session, meeting_id=meeting_id)
    meeting = get_meeting(session=session, meeting_id=meeting_id)
    template = get_template(session=session, template_id=meeting.template_id, version=meeting.template_version)
    ballots = meeting_ballots(conn=session, meeting_id=meeting_id)
    earlier = [
        breakdown_from_json(r.breakdown)
        for r in results_of(session=session, meeting_id=meeting_id)
        if r.version < result.version and r.breakdown is not None
    ]
    audit(
        session=session,
        actor=actor,
        action="meeting.audit_export",
        meeting_id=meeting_id,
        detail={"version": result.version, "ballots": len(ballots)},
    )
    session.commit()
    return AuditMaterial(meeting, result, template, ballots, earlier)


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
