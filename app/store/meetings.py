"""Meetings: creation, lifecycle, close-out with a frozen result and its digest, the webhook outbox."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import Engine, delete, select, update
from sqlmodel import Session, col

from app import text
from app.disclosure import can_close, reclose_gap_ok
from app.errors import Conflict, Forbidden, Invalid, NotFound
from app.figures import (
    WHOLE_RESULT,
    Subject,
    breakdown_from_json,
    breakdown_to_json,
    digest_of,
    figures_for,
    rules_document,
)
from app.schemas import GroupIn, MeetingCreate
from app.scoring import canonical_json
from app.sealing import ServerKeys, new_salt
from app.store import box
from app.store.ballot_templates import get_template
from app.store.base import DEFAULT_GROUPS, audit
from app.store.clock import database_now, next_result_number
from app.store.units import create_unit, find_unit
from app.store.webhooks import enqueue_result_event
from app.tables import (
    AuditEvent,
    BallotToken,
    Category,
    Meeting,
    MeetingSeal,
    Result,
    SealedBallot,
    Tally,
    Turnout,
    Unit,
)


def _check_groups(groups: Sequence[GroupIn]) -> list[dict[str, str | None]]:
    keys = [group.key for group in groups]
    if not groups:
        raise Invalid("meeting_no_groups")
    repeated = [key for index, key in enumerate(keys) if key in keys[:index]]
    if repeated:
        raise Invalid("meeting_group_repeats", key=repeated[0])
    weights = [group.weight for group in groups]
    given = [w for w in weights if w not in (None, "")]
    if given and len(given) != len(weights):
        raise Invalid("meeting_weights_partial")
    if given:
        numbers = []
        for weight in given:
            try:
                number = Decimal(weight)
            except ArithmeticError:
                raise Invalid("meeting_weight_not_number", weight=weight) from None
            if not number.is_finite():
                raise Invalid("meeting_weight_not_number", weight=weight)
            if number < 0:
                raise Invalid("meeting_weight_negative", weight=weight)
            numbers.append(number)
        if sum(numbers) != 100:
            raise Invalid("meeting_weights_sum", total=str(sum(numbers)))
    return [{"key": g.key, "name": g.name, "weight": str(Decimal(g.weight)) if g.weight else None} for g in groups]


def create_meeting(*, session: Session, actor: str, body: MeetingCreate) -> Meeting:
    unit = find_unit(session=session, code=body.unit_code)
    if unit is None:
        raise NotFound("unit_not_found", code=body.unit_code)
    template = get_template(session=session, template_id=body.template_id, version=body.template_version)
    groups_in = body.groups or [GroupIn(key=key, name=name) for key, name in DEFAULT_GROUPS]
    if body.mode == "screen" and any(group.weight for group in groups_in):
        # A code claimed from the projector has no rater group, so groups cannot be weighted.
        raise Invalid("meeting_screen_weights")
    meeting = Meeting(
        unit_id=unit.id,  # type: ignore[arg-type]
        year=body.year,
        date=body.date,
        title=body.title.strip(),
        template_id=template.id,
        template_version=template.version,
        mode=body.mode,
        attendance=body.attendance,
        groups=canonical_json(_check_groups(groups_in)),
        trim=body.trim,
        component_weight=body.component_weight,
        flagged_rule=body.flagged_rule,
    )
    session.add(meeting)
    session.flush()
    session.add(Tally(meeting_id=meeting.id))  # type: ignore[arg-type]
    session.add(Turnout(meeting_id=meeting.id))  # type: ignore[arg-type]
    audit(
        session=session,
        actor=actor,
        action="meeting.create",
        meeting_id=meeting.id,
        detail={"unit": unit.code, "title": meeting.title},
    )
    session.commit()
    return meeting


def get_meeting(*, session: Session, meeting_id: int, lock: bool = False) -> Meeting:
    query = select(Meeting).where(col(Meeting.id) == meeting_id)
    if lock:
        query = query.with_for_update()
    meeting = session.scalars(query).first()
    if meeting is None:
        raise NotFound("meeting_not_found", id=meeting_id)
    return meeting


def unit_of(*, session: Session, meeting: Meeting, lock: bool = False) -> tuple[Unit, Category]:
    """The meeting's unit as it is now (a result keeps it as it was at close). ``lock``: closes of
    two meetings of one unit wait for each other, so that only one of them can count."""
    # session.get answers from the session's identity map when it can (a list of meetings of few units).
    unit = session.get(Unit, meeting.unit_id, with_for_update=lock)
    assert unit is not None
    category = session.get(Category, unit.category_key)
    assert category is not None
    return unit, category


def list_meetings(
    *, session: Session, year: int | None = None, categories: Sequence[str] | None = None
) -> list[Meeting]:
    """By date; only the given categories' meetings when categories is not None."""
    query = select(Meeting).order_by(col(Meeting.date), col(Meeting.id))
    if year is not None:
        query = query.where(col(Meeting.year) == year)
    if categories is not None:
        query = query.join(Unit).where(col(Unit.category_key).in_(list(categories)))
    return list(session.scalars(query))


Action = Literal["open", "close", "reopen"]
_ALLOWED: dict[str, str] = {"open": "draft", "close": "open", "reopen": "closed"}


def _require_state(meeting: Meeting, action: Action) -> None:
    # Values, not words: the edge says "已结束" or "closed" (app.messages.TERMS).
    if meeting.state != _ALLOWED[action]:
        raise Conflict("meeting_transition", state=meeting.state, action=action)


def open_meeting(*, session: Session, actor: str, meeting_id: int) -> Meeting:
    meeting = get_meeting(session=session, meeting_id=meeting_id, lock=True)
    _require_state(meeting, "open")
    meeting.state = "open"
    session.add(meeting)
    _new_seal(session, meeting_id)
    audit(session=session, actor=actor, action="meeting.open", meeting_id=meeting_id)
    session.commit()
    return meeting


def _new_seal(session: Session, meeting_id: int) -> None:
    """A new key for the ballots of this opening: the last one was destroyed at close."""
    session.execute(delete(MeetingSeal).where(col(MeetingSeal.meeting_id) == meeting_id))
    session.add(MeetingSeal(meeting_id=meeting_id, salt=new_salt()))


def reopen_meeting(*, session: Session, actor: str, meeting_id: int, reason: str) -> Meeting:
    if not reason.strip():
        raise Invalid("meeting_reason_required")
    text.check(reason, "reason", paragraph=True)
    meeting = get_meeting(session=session, meeting_id=meeting_id, lock=True)
    _require_state(meeting, "reopen")
    meeting.state = "open"
    session.add(meeting)
    _new_seal(session, meeting_id)
    audit(
        session=session, actor=actor, action="meeting.reopen", meeting_id=meeting_id, detail={"reason": reason.strip()}
    )
    enqueue_result_event(session=session, meeting=meeting, event="meeting.reopened")
    session.commit()
    return meeting


def void_meeting(*, session: Session, actor: str, meeting_id: int, reason: str) -> Meeting:
    """作废: the meeting stops counting, in whatever state it was; the audit log keeps the reason.

    An open meeting takes no more ballots, and those still sealed are deleted with their key: they
    will never be counted, so they are never opened. A closed meeting's results leave the results
    export (each version stays readable by number) and subscribers hear ``meeting.voided``.
    Voiding is final; the unit's review of the year can then be held by another meeting.
    """
    if not reason.strip():
        raise Invalid("meeting_void_reason_required")
    text.check(reason, "reason", paragraph=True)
    meeting = get_meeting(session=session, meeting_id=meeting_id, lock=True)
    if meeting.state == "voided":
        raise Conflict("meeting_transition", state=meeting.state, action="void")
    was = meeting.state
    meeting.state = "voided"
    session.add(meeting)
    session.execute(delete(MeetingSeal).where(col(MeetingSeal.meeting_id) == meeting_id))
    session.execute(delete(SealedBallot).where(col(SealedBallot.meeting_id) == meeting_id))
    session.execute(update(Turnout).where(col(Turnout.meeting_id) == meeting_id).values(sealed=0))
    session.execute(
        update(BallotToken)
        .where(col(BallotToken.meeting_id) == meeting_id, col(BallotToken.used).is_(False))
        .values(void=True)
    )
    audit(session=session, actor=actor, action="meeting.void", meeting_id=meeting_id,
          detail={"reason": reason.strip(), "state": was})
    if was == "closed":
        enqueue_result_event(session=session, meeting=meeting, event="meeting.voided")
    session.commit()
    box.forget_sealer(meeting_id)
    if was == "open":
        bind = session.get_bind()
        assert isinstance(bind, Engine)
        if not box.scrub(bind):
            box.scrub_wanted = True
    return meeting


def delete_meeting(*, session: Session, actor: str, meeting_id: int) -> None:
    """Delete a meeting that never opened (a draft made by mistake), with the codes printed for it:
    it has no ballot and no result. A meeting that opened can only be voided."""
    meeting = get_meeting(session=session, meeting_id=meeting_id, lock=True)
    if meeting.state != "draft":
        raise Conflict("meeting_delete_not_draft")
    unit, _ = unit_of(session=session, meeting=meeting)
    # The audit log keeps its events; they no longer point at a meeting that is gone.
    session.execute(update(AuditEvent).where(col(AuditEvent.meeting_id) == meeting_id).values(meeting_id=None))
    session.execute(delete(BallotToken).where(col(BallotToken.meeting_id) == meeting_id))
    session.execute(delete(MeetingSeal).where(col(MeetingSeal.meeting_id) == meeting_id))
    session.execute(delete(Tally).where(col(Tally.meeting_id) == meeting_id))
    session.execute(delete(Turnout).where(col(Turnout.meeting_id) == meeting_id))
    session.execute(delete(Meeting).where(col(Meeting.id) == meeting_id))
    audit(session=session, actor=actor, action="meeting.delete",
          detail={"id": meeting_id, "unit": unit.code, "title": meeting.title, "date": meeting.date.isoformat()})
    session.commit()


def close_meeting(
    *,
    session: Session,
    actor: str,
    meeting_id: int,
    k: int,
    keys: ServerKeys,
    risk_reason: str = "",
    may_accept_risk: bool = False,
) -> Result:
    """Freeze the meeting: mix in the ballots still sealed, compute the result once, store it with
    the digest of its ballots, and destroy the meeting's sealing key.

    Refused with fewer than K ballots, and, after a reopen, when the new version would differ from
    the last by fewer than K ballots, unless an administrator (``may_accept_risk``) gives a
    ``risk_reason``, which the audit log keeps (app.disclosure).
    """
    meeting = get_meeting(session=session, meeting_id=meeting_id, lock=True)
    _require_state(meeting, "close")
    unit, category = unit_of(session=session, meeting=meeting, lock=True)
    counted = counted_review(session=session, unit_id=unit.id, year=meeting.year)  # type: ignore[arg-type]
    if counted is not None:
        raise Conflict("meeting_unit_year_counted", unit=f"{unit.code} {unit.name}", year=meeting.year, other=counted)
    turnout = session.get(Turnout, meeting_id)
    total = turnout.ballots if turnout is not None else 0
    if not can_close(total, k=k):
        raise Conflict("meeting_too_few_ballots", ballots=total, k=k)
    earlier = results_of(session=session, meeting_id=meeting_id)
    rewrite = False
    if earlier and not reclose_gap_ok(published=earlier[-1].ballot_count, total=total, k=k):
        if not risk_reason.strip():
            published = earlier[-1].ballot_count
            raise Conflict(
                "meeting_reclose_gap",
                published=published, total=total, added=total - published, k=k, needed=published + k,
            )
        if not may_accept_risk:
            raise Forbidden("meeting_reclose_reason", k=k)
        rewrite = True
    conn = session.connection()
    box.mix(conn=conn, meeting_id=meeting_id, keys=keys, k=k, final=True, rewrite=rewrite)
    template = get_template(session=session, template_id=meeting.template_id, version=meeting.template_version)
    ballots = box.meeting_ballots(conn=session, meeting_id=meeting_id)
    before = [breakdown_from_json(r.breakdown) for r in earlier if r.breakdown is not None]
    figures, shown = figures_for(template=template, meeting=meeting, ballots=ballots, k=k, earlier=before)
    # What the result says about the unit is frozen with it (and covered by its digest): renaming
    # the unit or moving it to another category later changes no published result.
    subject = Subject(unit_code=unit.code, unit_name=unit.name, category=category.key)
    result = Result(
        meeting_id=meeting_id,
        version=(earlier[-1].version if earlier else 0) + 1,
        figures=figures.model_dump_json(),
        digest=digest_of(WHOLE_RESULT, ballots=ballots, template=template, meeting=meeting, k=k,
                         subject=subject, earlier=before),
        digest_format=WHOLE_RESULT,
        rules=canonical_json(rules_document(meeting, k=k)),
        unit_code=subject.unit_code,
        unit_name=subject.unit_name,
        category=subject.category,
        ballot_count=len(ballots),
        breakdown=breakdown_to_json(shown),
        created_at=database_now(session),
        seq=next_result_number(session),
    )
    session.add(result)
    meeting.state = "closed"
    session.add(meeting)
    session.execute(
        update(Tally)
        .where(col(Tally.meeting_id) == meeting_id)
        .values(ballot_count=len(ballots), published_count=len(ballots), published=result.figures, published_sums=None)
    )
    # The key goes with its salt: after this commit no sealed ballot of the meeting can be opened.
    session.execute(delete(MeetingSeal).where(col(MeetingSeal.meeting_id) == meeting_id))
    detail: dict[str, Any] = {"version": result.version, "ballots": len(ballots), "digest": result.digest}
    if rewrite:
        detail["risk_reason"] = risk_reason.strip()
        detail["added"] = total - earlier[-1].ballot_count
    audit(session=session, actor=actor, action="meeting.close", meeting_id=meeting_id, detail=detail)
    enqueue_result_event(session=session, meeting=meeting, event="meeting.closed", result=result)
    session.commit()
    box.forget_sealer(meeting_id)
    bind = session.get_bind()
    assert isinstance(bind, Engine)
    if not box.scrub(bind):
        box.scrub_wanted = True
    return result


def shown_groups(*, session: Session, meeting: Meeting) -> frozenset[str | None] | None:
    """The rater groups a closed meeting's latest result shows apart; None while it is not closed."""
    if meeting.state != "closed":
        return None
    result = latest_result(session=session, meeting_id=meeting.id)  # type: ignore[arg-type]
    return breakdown_from_json(result.breakdown).shown if result.breakdown is not None else frozenset()


def results_of(*, session: Session, meeting_id: int) -> list[Result]:
    """Every version of a meeting's result, oldest first."""
    return list(
        session.scalars(select(Result).where(col(Result.meeting_id) == meeting_id).order_by(col(Result.version)))
    )


def latest_result(*, session: Session, meeting_id: int) -> Result:
    meeting = get_meeting(session=session, meeting_id=meeting_id)
    if meeting.state == "voided":
        raise Conflict("meeting_voided")
    if meeting.state != "closed":
        raise Conflict("meeting_not_closed")
    query = select(Result).where(col(Result.meeting_id) == meeting_id).order_by(col(Result.version).desc())
    result = session.scalars(query).first()
    assert result is not None, "a closed meeting always has a result"
    return result


def result_version(*, session: Session, meeting_id: int, version: int) -> Result:
    """One version of a meeting's result, whatever the meeting's state now: each was published, and
    each differs from the others by at least K ballots (app.disclosure), or by an administrator's
    recorded decision."""
    get_meeting(session=session, meeting_id=meeting_id)
    result = session.get(Result, (meeting_id, version))
    if result is None:
        raise NotFound("result_version_not_found", id=meeting_id, version=version)
    return result


def counted_review(*, session: Session, unit_id: int, year: int) -> int | None:
    """The meeting that counts as the unit's review of the year (closed, not voided), if any."""
    return session.scalars(
        select(col(Meeting.id)).where(
            col(Meeting.unit_id) == unit_id, col(Meeting.year) == year, col(Meeting.state) == "closed"
        )
    ).first()


def seed_demo(*, session: Session, year: int, date: dt.date) -> Meeting:
    unit = create_unit(
        session=session,
        actor="system:seed",
        code="DEMO001",
        name="示例单位（演示用）",
        category="party_gov",
    )
    return create_meeting(
        session=session,
        actor="system:seed",
        body=MeetingCreate(
            unit_code=unit.code,
            year=year,
            date=date,
            title=f"{year}年度党建工作述职评议会（演示）",
            mode="cards",
            attendance=35,
        ),
    )
