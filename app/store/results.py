"""Results for the main scoring system, the year overview, audit files and webhook deliveries."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select
from sqlmodel import Session, col

from app.disclosure import Breakdown
from app.errors import Invalid, NotFound
from app.export import result_record
from app.figures import StoredBallot, Subject, breakdown_from_json, digest_of, figures_for, rules_from_document
from app.overview import UnitYears, window as review_window
from app.schemas import FiguresPublic, ResultRecord
from app.store import box
from app.store.ballot_templates import get_template
from app.store.base import audit
from app.store.box import meeting_ballots
from app.store.meetings import get_meeting, latest_result, results_of
from app.store.units import _category_keys, categories, find_unit, list_units, review_years
from app.tables import Category, Meeting, Result
from app.templates import BallotTemplate


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


@dataclass(frozen=True)
class Verification:
    meeting_id: int
    version: int
    stored_digest: str
    computed_digest: str
    stored: FiguresPublic
    computed: FiguresPublic

    @property
    def digest_matches(self) -> bool:
        return self.stored_digest == self.computed_digest

    @property
    def figures_match(self) -> bool:
        return self.stored == self.computed

    @property
    def ok(self) -> bool:
        return self.digest_matches and self.figures_match


def verify_meeting(*, session: Session, meeting_id: int, k: int) -> Verification:
    """Recompute a closed meeting's result and digest from its stored ballots, for comparison.

    With the rules the result was frozen with (its K among them), not today's settings, and with the
    meeting's own fields as they stand: a trim or a weight changed in the database after close, a
    ballot changed, added or removed, a unit renamed in the result row, all change the digest.
    ``k`` is used only for results frozen before their rules were kept (digest format 1).
    """
    result = latest_result(session=session, meeting_id=meeting_id)
    meeting = get_meeting(session=session, meeting_id=meeting_id)
    template = get_template(session=session, template_id=meeting.template_id, version=meeting.template_version)
    ballots = box.meeting_ballots(conn=session, meeting_id=meeting_id)
    earlier = [
        breakdown_from_json(r.breakdown)
        for r in results_of(session=session, meeting_id=meeting_id)
        if r.version < result.version and r.breakdown is not None
    ]
    if result.rules is not None:
        _, k = rules_from_document(json.loads(result.rules))
    computed, _ = figures_for(template=template, meeting=meeting, ballots=ballots, k=k, earlier=earlier)
    subject = Subject(unit_code=result.unit_code, unit_name=result.unit_name, category=result.category)
    return Verification(
        meeting_id=meeting_id,
        version=result.version,
        stored_digest=result.digest,
        computed_digest=digest_of(result.digest_format, ballots=ballots, template=template, meeting=meeting, k=k,
                                  subject=subject, earlier=earlier),
        stored=FiguresPublic.model_validate_json(result.figures),
        computed=computed,
    )


def peer_results(*, session: Session, meeting: Meeting) -> list[FiguresPublic]:
    """The latest results of the closed meetings comparable with this one (itself included): same
    category as frozen in the results, same year, same template version."""
    own = latest_result(session=session, meeting_id=meeting.id)  # type: ignore[arg-type]
    newest = (
        select(col(Result.meeting_id).label("meeting_id"), func.max(col(Result.version)).label("version"))
        .group_by(col(Result.meeting_id))
        .subquery()
    )
    rows = session.scalars(
        select(Result)
        .join(newest, (col(Result.meeting_id) == newest.c.meeting_id) & (col(Result.version) == newest.c.version))
        .join(Meeting, col(Meeting.id) == col(Result.meeting_id))
        .where(
            col(Result.category) == own.category,
            col(Meeting.year) == meeting.year,
            col(Meeting.state) == "closed",
            col(Meeting.template_id) == meeting.template_id,
            col(Meeting.template_version) == meeting.template_version,
        )
    ).all()
    return [FiguresPublic.model_validate_json(row.figures) for row in rows]


def meeting_comments(*, session: Session, meeting_id: int) -> list[str]:
    """A closed meeting's comments, shuffled anew each time: their order tells nothing."""
    meeting = get_meeting(session=session, meeting_id=meeting_id)
    if meeting.state != "closed":
        return []
    comments = [b.comment for b in box.meeting_ballots(conn=session, meeting_id=meeting_id) if b.comment]
    secrets.SystemRandom().shuffle(comments)
    return comments
