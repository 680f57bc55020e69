"""The only module that reads or writes the database. Keyword-only functions.

Organizer actions go through an ORM ``Session`` and leave an audit event. The ballot hot path
(``submit_batch``) works on a Core ``Connection`` inside a transaction the writer owns, so that
many ballots share one commit (see app.writer).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal

from sqlalchemy import Connection, func, insert, select, update
from sqlmodel import Session, col

from app import tokens as tokens_mod
from app.errors import Conflict, DomainError, Invalid, NotFound, Problem, invalid_with
from app.export import figures_public
from app.imports import UnitRow, parse_units_csv
from app.models import (
    ApiKey,
    AuditEvent,
    Ballot,
    BallotToken,
    Category,
    FiguresPublic,
    GroupIn,
    Meeting,
    MeetingCreate,
    Result,
    Tally,
    TemplateVersion,
    Unit,
)
from app.scoring import GroupSpec, Rules, ScoredBallot, canonical_json, compute, score_ballot
from app.templates import BallotTemplate, default_template, parse_answers, parse_template

CATEGORIES: tuple[tuple[str, str, str], ...] = (
    ("party_gov", "党政机关", "Party and government organs"),
    ("central", "中直单位", "Central units in the province"),
    ("mass_org", "群团组织", "Mass organizations"),
    ("enterprise", "企事业单位", "Enterprises and institutions"),
)
DEFAULT_GROUPS: tuple[tuple[str, str], ...] = (
    ("leaders", "党组（党委）班子成员"),
    ("committee", "机关党委委员"),
    ("secretaries", "基层党组织书记"),
    ("representatives", "党员群众代表"),
)
MAX_MINT = 1000
API_KEY_PREFIX = "ob_"


# ---- reference data and seeding ---------------------------------------------------------------


def seed_reference(*, session: Session) -> None:
    """The four categories and the default template, when missing. Safe to run at every start."""
    for position, (key, name, name_en) in enumerate(CATEGORIES):
        if session.get(Category, key) is None:
            session.add(Category(key=key, name=name, name_en=name_en, position=position))
    template = default_template()
    if session.get(TemplateVersion, (template.id, template.version)) is None:
        session.add(
            TemplateVersion(
                template_id=template.id,
                version=template.version,
                name=template.name,
                body=template.to_json(),
            )
        )
    session.commit()


def is_empty(*, session: Session) -> bool:
    return int(session.execute(select(func.count()).select_from(Unit)).scalar_one()) == 0


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


def audit(
    *,
    session: Session,
    actor: str,
    action: str,
    meeting_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditEvent(
            actor=actor,
            action=action,
            meeting_id=meeting_id,
            detail=canonical_json(detail or {}),
        )
    )


def list_audit(*, session: Session, meeting_id: int | None = None) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(col(AuditEvent.id))
    if meeting_id is not None:
        query = query.where(col(AuditEvent.meeting_id) == meeting_id)
    return list(session.scalars(query))


# ---- API keys ---------------------------------------------------------------------------------


def _key_hash(key: str) -> str:
    # The key is 256 random bits, so a plain SHA-256 cannot be reversed by guessing.
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_api_key(*, session: Session, name: str, scopes: str = "admin") -> str:
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiKey(name=name, key_hash=_key_hash(key), scopes=scopes))
    audit(session=session, actor="system:cli", action="api_key.create", detail={"name": name})
    session.commit()
    return key


def authenticate_api_key(*, session: Session, key: str) -> ApiKey | None:
    row = session.scalars(select(ApiKey).where(col(ApiKey.key_hash) == _key_hash(key))).first()
    if row is None or row.revoked:
        return None
    today = dt.date.today()
    if row.last_used_on != today:
        row.last_used_on = today
        session.add(row)
        session.commit()
    return row


def count_api_keys(*, session: Session) -> int:
    return int(session.execute(select(func.count()).select_from(ApiKey)).scalar_one())


# ---- units ------------------------------------------------------------------------------------


def categories(*, session: Session) -> list[Category]:
    return list(session.scalars(select(Category).order_by(col(Category.position))))


def _category_keys(session: Session) -> list[str]:
    return [category.key for category in categories(session=session)]


def create_unit(*, session: Session, actor: str, code: str, name: str, category: str) -> Unit:
    code, name = code.strip(), name.strip()
    keys = _category_keys(session)
    problems = []
    if not code:
        problems.append(Problem("unit_field", {"field": "code"}))
    if not name:
        problems.append(Problem("unit_field", {"field": "name"}))
    if category not in keys:
        problems.append(Problem("unit_unknown_category", {"category": category, "allowed": "/".join(keys)}))
    if problems:
        raise invalid_with(problems)
    if find_unit(session=session, code=code) is not None:
        raise Conflict("unit_code_taken", code=code)
    unit = Unit(code=code, name=name, category_key=category)
    session.add(unit)
    session.flush()
    audit(session=session, actor=actor, action="unit.create", detail={"code": code})
    session.commit()
    return unit


def find_unit(*, session: Session, code: str) -> Unit | None:
    return session.scalars(select(Unit).where(col(Unit.code) == code)).first()


def list_units(*, session: Session, category: str | None = None) -> list[Unit]:
    # In the order the categories are listed in DESIGN.md, then by code.
    query = select(Unit).join(Category).order_by(col(Category.position), col(Unit.code))
    if category:
        query = query.where(col(Unit.category_key) == category)
    return list(session.scalars(query))


def import_units(*, session: Session, actor: str, data: bytes) -> list[Unit]:
    """All rows of the CSV, or none: a bad row raises before anything is written."""
    taken = set(session.scalars(select(col(Unit.code))))
    rows: list[UnitRow] = parse_units_csv(data, categories=_category_keys(session), taken_codes=taken)
    units = [Unit(code=row.code, name=row.name, category_key=row.category) for row in rows]
    session.add_all(units)
    audit(session=session, actor=actor, action="unit.import", detail={"count": len(units)})
    session.commit()
    return units


# ---- templates --------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _parse_cached(body: str) -> BallotTemplate:
    # Versions never change once written, so a parsed version may be kept for the process.
    return parse_template(body)


def get_template(*, session: Session | Connection, template_id: str, version: int | None = None) -> BallotTemplate:
    query = select(col(TemplateVersion.body)).where(col(TemplateVersion.template_id) == template_id)
    if version is None:
        query = query.order_by(col(TemplateVersion.version).desc())
    else:
        query = query.where(col(TemplateVersion.version) == version)
    body = session.execute(query.limit(1)).scalar()
    if body is None:
        if version is None:
            raise NotFound("template_not_found", id=template_id)
        raise NotFound("template_version_not_found", id=template_id, version=version)
    return _parse_cached(body)


def list_templates(*, session: Session) -> list[tuple[str, list[int], str]]:
    rows = session.execute(
        select(col(TemplateVersion.template_id), col(TemplateVersion.version), col(TemplateVersion.name)).order_by(
            col(TemplateVersion.template_id), col(TemplateVersion.version)
        )
    ).all()
    found: dict[str, tuple[list[int], str]] = {}
    for template_id, version, name in rows:
        versions, _ = found.get(template_id, ([], name))
        found[template_id] = ([*versions, version], name)
    return [(tid, versions, name) for tid, (versions, name) in found.items()]


def save_template(*, session: Session, actor: str, template: BallotTemplate) -> BallotTemplate:
    """Store a template as its next version; the version in the body must be that next one or absent."""
    latest = session.execute(
        select(func.max(TemplateVersion.version)).where(col(TemplateVersion.template_id) == template.id)
    ).scalar()
    next_version = (latest or 0) + 1
    if latest is not None and template.version not in (1, next_version):
        raise Conflict("template_version_taken", id=template.id, version=template.version, next=next_version)
    if latest is None and template.version != 1:
        next_version = template.version
    template = template.model_copy(update={"version": next_version})
    session.add(
        TemplateVersion(template_id=template.id, version=template.version, name=template.name, body=template.to_json())
    )
    audit(
        session=session, actor=actor, action="template.create", detail={"id": template.id, "version": template.version}
    )
    session.commit()
    return template


# ---- meetings ---------------------------------------------------------------------------------


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
        raise Invalid("meeting_groups", error="至少需要一个评议人类别 (at least one group)")
    if len(set(keys)) != len(keys):
        raise Invalid("meeting_groups", error="类别编号重复 (group keys repeat)")
    weights = [group.weight for group in groups]
    given = [w for w in weights if w not in (None, "")]
    if given and len(given) != len(weights):
        raise Invalid("meeting_weights_partial")
    if given:
        try:
            numbers = [Decimal(w) for w in given]
        except ArithmeticError:
            raise Invalid("meeting_groups", error="权重应为数字 (weights must be numbers)") from None
        if any(not n.is_finite() or n < 0 for n in numbers):
            raise Invalid("meeting_groups", error="权重不能为负 (weights cannot be negative)")
        if sum(numbers) != 100:
            raise Invalid("meeting_weights_sum", total=str(sum(numbers)))
    return [{"key": g.key, "name": g.name, "weight": str(Decimal(g.weight)) if g.weight else None} for g in groups]


def create_meeting(*, session: Session, actor: str, body: MeetingCreate) -> Meeting:
    unit = find_unit(session=session, code=body.unit_code)
    if unit is None:
        raise NotFound("unit_not_found", code=body.unit_code)
    template = get_template(session=session, template_id=body.template_id, version=body.template_version)
    groups_in = body.groups or [GroupIn(key=key, name=name) for key, name in DEFAULT_GROUPS]
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


def list_meetings(*, session: Session, year: int | None = None) -> list[Meeting]:
    query = select(Meeting).order_by(col(Meeting.date), col(Meeting.id))
    if year is not None:
        query = query.where(col(Meeting.year) == year)
    return list(session.scalars(query))


Action = Literal["open", "close", "reopen"]
_ALLOWED: dict[str, str] = {"open": "draft", "close": "open", "reopen": "closed"}
_STATE_ZH = {"draft": "未开始", "open": "进行中", "closed": "已结束"}
_ACTION_ZH = {"open": "开启", "close": "结束", "reopen": "重新开启"}


def _require_state(meeting: Meeting, action: Action) -> None:
    if meeting.state != _ALLOWED[action]:
        raise Conflict(
            "meeting_transition", state=_STATE_ZH.get(meeting.state, meeting.state), action=_ACTION_ZH[action]
        )


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
    meeting = get_meeting(session=session, meeting_id=meeting_id, lock=True)
    _require_state(meeting, "reopen")
    meeting.state = "open"
    session.add(meeting)
    audit(
        session=session, actor=actor, action="meeting.reopen", meeting_id=meeting_id, detail={"reason": reason.strip()}
    )
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
    scored: list[ScoredBallot] = [score_ballot(template, b.answers, b.group) for b in ballots]
    groups = group_specs(meeting)
    figures = compute(template, scored, groups, rules_of(meeting, k=k))
    return figures_public(template, figures, groups, Decimal(meeting.component_weight))


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
        .values(ballot_count=len(ballots), published_count=len(ballots), published=result.figures)
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
    session.commit()
    return result


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


# ---- tokens -----------------------------------------------------------------------------------


def mint_tokens(
    *, session: Session, actor: str, meeting_id: int, count: int, group: str | None
) -> list[tuple[str, str | None]]:
    """Mint single-use codes; only their hashes are kept, so they are shown this once."""
    meeting = get_meeting(session=session, meeting_id=meeting_id)
    if meeting.state == "closed":
        raise Conflict("meeting_tokens_closed")
    if not 1 <= count <= MAX_MINT:
        raise Invalid("meeting_token_count", max=MAX_MINT)
    specs = group_specs(meeting)
    if group is not None and group not in {spec.key for spec in specs}:
        raise Invalid("meeting_unknown_group", group=group)
    if group is None and any(spec.weight for spec in specs):
        raise Invalid("meeting_group_required")
    codes = [tokens_mod.mint_code() for _ in range(count)]
    session.execute(
        insert(BallotToken),
        [
            {
                "hash": tokens_mod.token_hash(code),
                "meeting_id": meeting_id,
                "group_key": group,
                "used": False,
                "void": False,
            }
            for code in codes
        ],
    )
    audit(
        session=session,
        actor=actor,
        action="tokens.mint",
        meeting_id=meeting_id,
        detail={"count": count, "group": group},
    )
    session.commit()
    return [(code, group) for code in codes]


# ---- the ballot hot path ----------------------------------------------------------------------


@dataclass(frozen=True)
class Submission:
    code: str
    answers: dict[str, Any]
    comment: str | None


@dataclass(frozen=True)
class Outcome:
    status: Literal["counted", "already_counted"] | None = None
    error: DomainError | None = None


@dataclass
class _MeetingInfo:
    meeting: Any  # the meeting's row, read under a share lock for the batch
    template: BallotTemplate
    added: int = 0


def submit_batch(*, conn: Connection, submissions: Sequence[Submission], k: int) -> list[Outcome]:
    """Spend each submission's token and store its ballot, all in the caller's transaction.

    Each token is spent by a conditional UPDATE (used = false -> true): under any concurrency
    exactly one ballot is stored per token. Tokens are handled in hash order, so two workers'
    batches lock rows in the same order and cannot deadlock.
    """
    hashes = {index: tokens_mod.token_hash(sub.code) for index, sub in enumerate(submissions)}
    rows = {
        row.hash: row
        for row in conn.execute(
            select(BallotToken.__table__).where(col(BallotToken.hash).in_(set(hashes.values())))  # type: ignore[attr-defined]
        ).all()
    }
    meetings: dict[int, _MeetingInfo] = {}
    spent_now: dict[str, str] = {}  # hash -> fingerprint, for a duplicate within this batch
    outcomes: dict[int, Outcome] = {}
    for index in sorted(hashes, key=lambda i: hashes[i]):
        sub, token_hash = submissions[index], hashes[index]
        token = rows.get(token_hash)
        if token is None:
            outcomes[index] = Outcome(error=NotFound("token_unknown"))
            continue
        if token.void:
            outcomes[index] = Outcome(error=Conflict("token_void"))
            continue
        info = meetings.get(token.meeting_id)
        if info is None:
            meeting = conn.execute(
                select(Meeting.__table__).where(Meeting.__table__.c.id == token.meeting_id).with_for_update(read=True)  # type: ignore[attr-defined]
            ).one()
            template = get_template(session=conn, template_id=meeting.template_id, version=meeting.template_version)
            info = meetings[token.meeting_id] = _MeetingInfo(meeting, template)
        outcomes[index] = _spend_one(conn, sub, token_hash, token, info, spent_now)
    for meeting_id in sorted(meetings):
        if meetings[meeting_id].added:
            _advance_tally(conn, meetings[meeting_id], k=k)
    return [outcomes[index] for index in range(len(submissions))]


def _spend_one(
    conn: Connection,
    sub: Submission,
    token_hash: str,
    token: Any,
    info: _MeetingInfo,
    spent_now: dict[str, str],
) -> Outcome:
    try:
        answers = parse_answers(info.template, sub.answers)
    except Invalid as exc:
        if token.used or token_hash in spent_now:
            return Outcome(error=Conflict("token_spent_different"))
        return Outcome(error=exc)
    comment = (sub.comment or "").strip() or None
    fingerprint = tokens_mod.answers_fingerprint(
        sub.code, canonical_json({"answers": answers, "comment": comment or ""})
    )
    previous = spent_now.get(token_hash, token.fingerprint if token.used else None)
    if token.used or token_hash in spent_now:
        # After close the fingerprint is gone: a spent code can then only have counted.
        if previous is None or previous == fingerprint:
            return Outcome(status="already_counted")
        return Outcome(error=Conflict("token_spent_different"))
    if info.meeting.state != "open":
        return Outcome(error=Conflict("meeting_not_open", state=_STATE_ZH.get(info.meeting.state, info.meeting.state)))
    spent = conn.execute(
        update(BallotToken)
        .where(col(BallotToken.hash) == token_hash, col(BallotToken.used).is_(False))
        .values(used=True, fingerprint=fingerprint)
    )
    if spent.rowcount != 1:
        # Another worker spent it between our read and our update.
        theirs = conn.execute(select(col(BallotToken.fingerprint)).where(col(BallotToken.hash) == token_hash)).scalar()
        if theirs is None or theirs == fingerprint:
            return Outcome(status="already_counted")
        return Outcome(error=Conflict("token_spent_different"))
    scored = score_ballot(info.template, answers, token.group_key)
    conn.execute(
        insert(Ballot).values(
            id=secrets.token_hex(16),
            meeting_id=info.meeting.id,
            group_key=token.group_key,
            answers=canonical_json(answers),
            total=format(scored.total, "f"),
            flagged=scored.flagged,
            comment=comment,
        )
    )
    spent_now[token_hash] = fingerprint
    info.added += 1
    return Outcome(status="counted")


def _advance_tally(conn: Connection, info: _MeetingInfo, *, k: int) -> None:
    """Count the new ballots; republish the figures once K more ballots have come in."""
    meeting_id = info.meeting.id
    count, published_count = conn.execute(
        update(Tally)
        .where(col(Tally.meeting_id) == meeting_id)
        .values(ballot_count=Tally.ballot_count + info.added)
        .returning(col(Tally.ballot_count), col(Tally.published_count))
    ).one()
    if count - published_count < k:
        return
    ballots = meeting_ballots(conn=conn, meeting_id=meeting_id)
    figures = figures_for(template=info.template, meeting=info.meeting, ballots=ballots, k=k)
    conn.execute(
        update(Tally)
        .where(col(Tally.meeting_id) == meeting_id)
        .values(published_count=len(ballots), published=figures.model_dump_json())
    )
