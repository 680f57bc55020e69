"""Meetings: creation, lifecycle, close-out with a frozen result and its digest, the webhook outbox."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import Connection, func, select, update
from sqlmodel import Session, col

from app import scoring, text
from app.errors import Conflict, Invalid, NotFound
from app.export import figures_public, result_record
from app.export_schema import WebhookBody, WebhookEvent
from app.models import (
    Ballot,
    BallotToken,
    Category,
    DistributionBin,
    FiguresPublic,
    GroupIn,
    Meeting,
    MeetingCreate,
    Result,
    Tally,
    Unit,
    WebhookDelivery,
    WebhookEndpoint,
    utcnow,
)
from app.scoring import Figures, GroupSpec, Rules, ScoredBallot, canonical_json, compute, score_ballot
from app.store.ballot_templates import get_template
from app.store.base import DEFAULT_GROUPS, audit
from app.store.units import create_unit, find_unit
from app.tally import Snapshot
from app.templates import BallotTemplate


def group_specs(meeting: Meeting) -> list[GroupSpec]:
    return [
        GroupSpec(key=g["key"], name=g["name"], weight=Decimal(g["weight"]) if g.get("weight") else None)
        for g in json.loads(meeting.groups)
    ]


def rules_of(meeting: Meeting, *, k: int) -> Rules:
    return Rules(
        trim=meeting.trim,
        k=k,
        component_weight=Decimal(meeting.component_weight),
        flagged_rule="exclude" if meeting.flagged_rule == "exclude" else "count",
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


def unit_of(*, session: Session, meeting: Meeting) -> tuple[Unit, Category]:
    unit = session.get(Unit, meeting.unit_id)
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
    audit(session=session, actor=actor, action="meeting.open", meeting_id=meeting_id)
    session.commit()
    return meeting


def reopen_meeting(*, session: Session, actor: str, meeting_id: int, reason: str) -> Meeting:
    if not reason.strip():
        raise Invalid("meeting_reason_required")
    text.check(reason, "reason", paragraph=True)
    meeting = get_meeting(session=session, meeting_id=meeting_id, lock=True)
    _require_state(meeting, "reopen")
    meeting.state = "open"
    session.add(meeting)
    audit(
        session=session, actor=actor, action="meeting.reopen", meeting_id=meeting_id, detail={"reason": reason.strip()}
    )
    enqueue_result_event(session=session, meeting=meeting, event="meeting.reopened")
    session.commit()
    return meeting


@dataclass(frozen=True)
class StoredBallot:
    group: str | None
    answers: dict[str, str]
    comment: str | None


def meeting_ballots(*, conn: Session | Connection, meeting_id: int) -> list[StoredBallot]:
    """A meeting's ballots in random-id order: the only order the box has."""
    rows = conn.execute(
        select(col(Ballot.group_key), col(Ballot.answers), col(Ballot.comment))
        .where(col(Ballot.meeting_id) == meeting_id)
        .order_by(col(Ballot.id))
    ).all()
    return [StoredBallot(group, json.loads(answers), comment) for group, answers, comment in rows]


def ballot_set_digest(ballots: Iterable[StoredBallot]) -> str:
    """SHA-256 over the sorted canonical ballots; anyone with the raw ballots can recompute it."""
    canon = sorted(
        canonical_json({"group": b.group, "answers": b.answers, "comment": b.comment or ""}) for b in ballots
    )
    return hashlib.sha256(("[" + ",".join(canon) + "]").encode("utf-8")).hexdigest()


def figures_for(
    *, template: BallotTemplate, meeting: Meeting, ballots: Sequence[StoredBallot], k: int
) -> FiguresPublic:
    """A meeting's figures recounted from all its ballots: at close, for verify and recount."""
    scored: list[ScoredBallot] = [score_ballot(template, b.answers, b.group) for b in ballots]
    figures = compute(template, scored, group_specs(meeting), rules_of(meeting, k=k))
    return public_figures(template, meeting, figures, scoring.distribution([ballot.total for ballot in scored]))


def public_figures(template: BallotTemplate, meeting: Any, figures: Figures, counts: Sequence[int]) -> FiguresPublic:
    """The one rendering of figures, whether recounted (close) or kept running (the live tally)."""
    public = figures_public(template, figures, group_specs(meeting), Decimal(meeting.component_weight))
    edges = scoring.DISTRIBUTION_EDGES
    public.distribution = [
        DistributionBin(
            label=f"{edges[i]}–{edges[i + 1]}",
            low=str(edges[i]),
            high=str(edges[i + 1]),
            count=count,
        )
        for i, count in enumerate(counts)
    ]
    return public


def close_meeting(*, session: Session, actor: str, meeting_id: int, k: int) -> Result:
    """Freeze the meeting: compute the result once, store it with the digest of its ballots."""
    meeting = get_meeting(session=session, meeting_id=meeting_id, lock=True)
    _require_state(meeting, "close")
    template = get_template(session=session, template_id=meeting.template_id, version=meeting.template_version)
    ballots = meeting_ballots(conn=session, meeting_id=meeting_id)
    figures = figures_for(template=template, meeting=meeting, ballots=ballots, k=k)
    latest = session.execute(select(func.max(Result.version)).where(col(Result.meeting_id) == meeting_id)).scalar()
    result = Result(
        meeting_id=meeting_id,
        version=(latest or 0) + 1,
        figures=figures.model_dump_json(),
        digest=ballot_set_digest(ballots),
        ballot_count=len(ballots),
    )
    session.add(result)
    meeting.state = "closed"
    session.add(meeting)
    session.execute(
        update(Tally)
        .where(col(Tally.meeting_id) == meeting_id)
        .values(ballot_count=len(ballots), published_count=len(ballots), published=result.figures, published_sums=None)
    )
    # The retry fingerprints have done their job; after close nothing may tell ballots apart.
    session.execute(update(BallotToken).where(col(BallotToken.meeting_id) == meeting_id).values(fingerprint=None))
    audit(
        session=session,
        actor=actor,
        action="meeting.close",
        meeting_id=meeting_id,
        detail={"version": result.version, "ballots": len(ballots), "digest": result.digest},
    )
    enqueue_result_event(session=session, meeting=meeting, event="meeting.closed", result=result)
    session.commit()
    return result


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
    """Recompute a closed meeting's result and digest from its stored ballots, for comparison."""
    result = latest_result(session=session, meeting_id=meeting_id)
    meeting = get_meeting(session=session, meeting_id=meeting_id)
    template = get_template(session=session, template_id=meeting.template_id, version=meeting.template_version)
    ballots = meeting_ballots(conn=session, meeting_id=meeting_id)
    return Verification(
        meeting_id=meeting_id,
        version=result.version,
        stored_digest=result.digest,
        computed_digest=ballot_set_digest(ballots),
        stored=FiguresPublic.model_validate_json(result.figures),
        computed=figures_for(template=template, meeting=meeting, ballots=ballots, k=k),
    )


def peer_results(*, session: Session, meeting: Meeting) -> list[FiguresPublic]:
    """The latest results of the closed meetings comparable with this one (itself included):
    same category, same year, same template version."""
    unit, _ = unit_of(session=session, meeting=meeting)
    peers = session.scalars(
        select(Meeting)
        .join(Unit)
        .where(
            col(Unit.category_key) == unit.category_key,
            col(Meeting.year) == meeting.year,
            col(Meeting.state) == "closed",
            col(Meeting.template_id) == meeting.template_id,
            col(Meeting.template_version) == meeting.template_version,
        )
    ).all()
    return [
        FiguresPublic.model_validate_json(latest_result(session=session, meeting_id=peer.id).figures)  # type: ignore[arg-type]
        for peer in peers
    ]


def meeting_comments(*, session: Session, meeting_id: int) -> list[str]:
    """A closed meeting's comments, shuffled anew each time: their order tells nothing."""
    meeting = get_meeting(session=session, meeting_id=meeting_id)
    if meeting.state != "closed":
        return []
    comments = [b.comment for b in meeting_ballots(conn=session, meeting_id=meeting_id) if b.comment]
    secrets.SystemRandom().shuffle(comments)
    return comments


def latest_result(*, session: Session, meeting_id: int) -> Result:
    meeting = get_meeting(session=session, meeting_id=meeting_id)
    if meeting.state != "closed":
        raise Conflict("meeting_not_closed")
    query = select(Result).where(col(Result.meeting_id) == meeting_id).order_by(col(Result.version).desc())
    result = session.scalars(query).first()
    assert result is not None, "a closed meeting always has a result"
    return result


def tally(*, session: Session, meeting_id: int) -> tuple[Meeting, Tally, int]:
    meeting = get_meeting(session=session, meeting_id=meeting_id)
    row = session.get(Tally, meeting_id)
    assert row is not None
    issued = session.execute(
        select(func.count())
        .select_from(BallotToken)
        .where(col(BallotToken.meeting_id) == meeting_id, col(BallotToken.void).is_(False))
    ).scalar_one()
    return meeting, row, int(issued)


# (meeting id, published count, K) -> (the published sums, the figures rendered from them, as JSON):
# rendering takes about a millisecond, and every dashboard reads again after each step of K.
_rendered: dict[tuple[int, int, int], tuple[str, str]] = {}
RENDERED_KEPT = 256


def published_figures(*, session: Session, meeting: Meeting, row: Tally, k: int) -> str | None:
    """The figures last published, as FiguresPublic JSON; None before the first step of K.

    After close they are the recount, kept in the row. While the meeting is open the writer keeps
    only the counts and trimmed sums as they stood at the last step of K (app.tally.Snapshot), and
    the figures are rendered from them here: every worker renders the same figures from the same sums.
    """
    if row.published is not None:
        return row.published
    if row.published_sums is None:
        return None
    assert meeting.id is not None
    key = (meeting.id, row.published_count, k)
    cached = _rendered.get(key)
    if cached is not None and cached[0] == row.published_sums:
        return cached[1]
    template = get_template(session=session, template_id=meeting.template_id, version=meeting.template_version)
    sums = Snapshot.from_json(row.published_sums)
    figures = sums.figures(template, group_specs(meeting), rules_of(meeting, k=k))
    text = public_figures(template, meeting, figures, sums.distribution()).model_dump_json()
    if len(_rendered) >= RENDERED_KEPT:
        del _rendered[next(iter(_rendered))]
    _rendered[key] = (row.published_sums, text)
    return text


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
    unit, category = unit_of(session=session, meeting=meeting)
    record = result_record(meeting=meeting, unit=unit, category=category, result=result)
    now = utcnow()
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
