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
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import Connection, and_, func, insert, or_, select, update
from sqlmodel import Session, col

from app import auth, scoring
from app import tokens as tokens_mod
from app.errors import Conflict, DomainError, Invalid, NotFound, Problem, Unauthorized, invalid_with
from app.export import figures_public, result_record
from app.export_schema import ResultRecord, WebhookBody, WebhookEvent
from app.imports import UnitRow, parse_units_file
from app.models import (
    ApiKey,
    AuditEvent,
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
    TemplateVersion,
    Unit,
    User,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    utcnow,
)
from app.overview import UnitYears
from app.overview import window as review_window
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
API_SCOPES = ("admin", "export")


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


AUDIT_PAGE = 200


def list_audit(
    *, session: Session, meeting_id: int | None = None, actor: str | None = None, limit: int = AUDIT_PAGE
) -> list[AuditEvent]:
    """Newest first."""
    query = select(AuditEvent).order_by(col(AuditEvent.id).desc()).limit(limit)
    if meeting_id is not None:
        query = query.where(col(AuditEvent.meeting_id) == meeting_id)
    if actor:
        query = query.where(col(AuditEvent.actor) == actor)
    return list(session.scalars(query))


def audit_actors(*, session: Session) -> list[str]:
    return list(session.scalars(select(col(AuditEvent.actor)).distinct().order_by(col(AuditEvent.actor))))


# ---- API keys ---------------------------------------------------------------------------------


def _key_hash(key: str) -> str:
    # The key is 256 random bits, so a plain SHA-256 cannot be reversed by guessing.
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_api_key(*, session: Session, name: str, scopes: str = "admin", actor: str = "system:cli") -> str:
    name, scopes = name.strip(), " ".join(scopes.split())
    if not name:
        raise Invalid("unit_field", field="名称 (name)")
    if not scopes or any(scope not in API_SCOPES for scope in scopes.split()):
        raise Invalid("api_key_scope", scopes=scopes)
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiKey(name=name, key_hash=_key_hash(key), scopes=scopes))
    audit(session=session, actor=actor, action="api_key.create", detail={"name": name, "scopes": scopes})
    session.commit()
    return key


def authenticate_api_key(*, session: Session, key: str) -> ApiKey | None:
    row = session.scalars(select(ApiKey).where(col(ApiKey.key_hash) == _key_hash(key))).first()
    if row is None or row.revoked:
        return None
    return row


def touch_api_key(*, session: Session, key_id: int) -> None:
    """Note the day a key was used (a day, not a time: enough to spot a key nobody uses)."""
    session.execute(update(ApiKey).where(col(ApiKey.id) == key_id).values(last_used_on=dt.date.today()))
    session.commit()


def count_api_keys(*, session: Session) -> int:
    return int(session.execute(select(func.count()).select_from(ApiKey)).scalar_one())


def list_api_keys(*, session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(col(ApiKey.id))))


def revoke_api_key(*, session: Session, actor: str, key_id: int) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFound("not_found")
    key.revoked = True
    session.add(key)
    audit(session=session, actor=actor, action="api_key.revoke", detail={"name": key.name})
    session.commit()
    return key


# ---- organizer accounts -----------------------------------------------------------------------


def _check_account(session: Session, role: str, categories: Sequence[str]) -> str:
    if role not in auth.USER_ROLES:
        raise Invalid("account_role", role=role)
    known = set(_category_keys(session))
    unknown = [c for c in categories if c not in known]
    if unknown:
        raise Invalid("unit_unknown_category", category=",".join(unknown), allowed="/".join(sorted(known)))
    return " ".join(sorted(set(categories)))


def create_user(
    *, session: Session, actor: str, username: str, display_name: str, password: str, role: str,
    categories: Sequence[str] = (),
) -> User:
    username = username.strip()
    if not username or not display_name.strip():
        raise Invalid("unit_field", field="用户名和姓名 (username and name)")
    problem = auth.password_problem(password, username)
    if problem:
        raise Invalid("account_password", error=problem)
    cats = _check_account(session, role, categories)
    if session.scalars(select(User).where(col(User.username) == username)).first() is not None:
        raise Conflict("account_taken", username=username)
    user = User(
        username=username, display_name=display_name.strip(), password_hash=auth.hash_password(password),
        role=role, categories=cats,
    )
    session.add(user)
    audit(session=session, actor=actor, action="account.create", detail={"username": username, "role": role})
    session.commit()
    return user


def update_user(
    *, session: Session, actor: str, user_id: int, role: str, categories: Sequence[str], active: bool
) -> User:
    user = get_user(session=session, user_id=user_id)
    user.categories = _check_account(session, role, categories)
    user.role = role
    user.active = active
    session.add(user)
    audit(session=session, actor=actor, action="account.update",
          detail={"username": user.username, "role": role, "categories": user.categories, "active": active})
    session.commit()
    return user


def get_user(*, session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("not_found")
    return user


def find_active_user(*, session: Session, user_id: int) -> User | None:
    user = session.get(User, user_id)
    return user if user is not None and user.active else None


def list_users(*, session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(col(User.username))))


def count_users(*, session: Session) -> int:
    return int(session.execute(select(func.count()).select_from(User)).scalar_one())


def sign_in(*, session: Session, username: str, password: str, now: dt.datetime | None = None) -> User:
    """The user, or SignInFailed; repeated failures lock the account for a while."""
    now = now or utcnow()
    user = session.scalars(select(User).where(col(User.username) == username.strip())).first()
    if user is None or not user.active:
        auth.verify_password(_DUMMY_HASH, password)  # same work either way: no user enumeration by timing
        raise Unauthorized("sign_in_failed")
    locked_until = _aware(user.locked_until)
    if auth.is_locked(locked_until, now):
        raise Unauthorized("sign_in_locked", minutes=int((locked_until - now).total_seconds() // 60) + 1)  # type: ignore[operator]
    if not auth.verify_password(user.password_hash, password):
        user.failed_logins, user.locked_until = auth.after_failure(user.failed_logins, now)
        session.add(user)
        audit(session=session, actor=f"user:{user.username}", action="account.sign_in_failed")
        session.commit()
        raise Unauthorized("sign_in_failed")
    user.failed_logins, user.locked_until = 0, None
    session.add(user)
    audit(session=session, actor=f"user:{user.username}", action="account.sign_in")
    session.commit()
    return user


def change_password(*, session: Session, user_id: int, current: str, new: str) -> User:
    user = get_user(session=session, user_id=user_id)
    if not auth.verify_password(user.password_hash, current):
        raise Invalid("account_password", error="当前密码不正确")
    problem = auth.password_problem(new, user.username)
    if problem:
        raise Invalid("account_password", error=problem)
    user.password_hash = auth.hash_password(new)
    session.add(user)
    audit(session=session, actor=f"user:{user.username}", action="account.password")
    session.commit()
    return user


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    # SQLite hands datetimes back without a zone; they were written in UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


_DUMMY_HASH = auth.hash_password("not-a-real-password-only-equalizes-timing")


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


def preview_import(*, session: Session, data: bytes, categories: Sequence[str] | None = None) -> list[UnitRow]:
    """What an import would add (CSV or XLSX), or Invalid naming every bad row; writes nothing."""
    taken = set(session.scalars(select(col(Unit.code))))
    allowed = _category_keys(session) if categories is None else list(categories)
    return parse_units_file(data, categories=allowed, taken_codes=taken)


def update_unit(*, session: Session, actor: str, code: str, name: str, category: str) -> Unit:
    unit = find_unit(session=session, code=code)
    if unit is None:
        raise NotFound("unit_not_found", code=code)
    keys = _category_keys(session)
    if not name.strip():
        raise Invalid("unit_field", field="name")
    if category not in keys:
        raise Invalid("unit_unknown_category", category=category, allowed="/".join(keys))
    before = {"name": unit.name, "category": unit.category_key}
    unit.name, unit.category_key = name.strip(), category
    session.add(unit)
    audit(session=session, actor=actor, action="unit.update",
          detail={"code": code, "before": before, "after": {"name": unit.name, "category": category}})
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


def import_units(
    *, session: Session, actor: str, data: bytes, categories: Sequence[str] | None = None
) -> list[Unit]:
    """All rows of the CSV, or none: a bad row raises before anything is written.

    ``categories`` limits the rows to the categories the importer may manage.
    """
    rows = preview_import(session=session, data=data, categories=categories)
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
    if body.mode == "screen" and any(group.weight for group in groups_in):
        # A code claimed from the projector has no rater group, so groups cannot be weighted.
        raise Invalid("meeting_groups", error="扫屏方式不能按评议人类别加权 (screen meetings cannot weight groups)")
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
    scored: list[ScoredBallot] = [score_ballot(template, b.answers, b.group) for b in ballots]
    groups = group_specs(meeting)
    figures = compute(template, scored, groups, rules_of(meeting, k=k))
    public = figures_public(template, figures, groups, Decimal(meeting.component_weight))
    edges = scoring.DISTRIBUTION_EDGES
    counts = scoring.distribution([ballot.total for ballot in scored])
    public.distribution = [
        DistributionBin(
            label=f"{edges[i]}–{edges[i + 1]}",
            low=str(edges[i]), high=str(edges[i + 1]), count=count,
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
        meeting_id=meeting_id, version=result.version, stored_digest=result.digest,
        computed_digest=ballot_set_digest(ballots), stored=FiguresPublic.model_validate_json(result.figures),
        computed=figures_for(template=template, meeting=meeting, ballots=ballots, k=k),
    )


def peer_results(*, session: Session, meeting: Meeting) -> list[FiguresPublic]:
    """The latest results of the closed meetings comparable with this one (itself included):
    same category, same year, same template version."""
    unit, _ = unit_of(session=session, meeting=meeting)
    peers = session.scalars(
        select(Meeting).join(Unit).where(
            col(Unit.category_key) == unit.category_key, col(Meeting.year) == meeting.year,
            col(Meeting.state) == "closed", col(Meeting.template_id) == meeting.template_id,
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


def void_unused_tokens(*, session: Session, actor: str, meeting_id: int, group: str | None = None) -> int:
    """Void every unspent code of a meeting (or of one group): for a lost or misprinted sheet."""
    get_meeting(session=session, meeting_id=meeting_id)
    query = update(BallotToken).where(
        col(BallotToken.meeting_id) == meeting_id, col(BallotToken.used).is_(False), col(BallotToken.void).is_(False)
    )
    if group is not None:
        query = query.where(col(BallotToken.group_key) == group)
    count = session.execute(query.values(void=True)).rowcount  # type: ignore[attr-defined]
    audit(session=session, actor=actor, action="tokens.void", meeting_id=meeting_id,
          detail={"count": count, "group": group})
    session.commit()
    return int(count)


def token_counts(*, session: Session, meeting_id: int) -> dict[str | None, dict[str, int]]:
    """Per rater group: codes issued (not void), spent, and void. Counts only: nothing links to ballots."""
    rows = session.execute(
        select(col(BallotToken.group_key), col(BallotToken.used), col(BallotToken.void), func.count())
        .where(col(BallotToken.meeting_id) == meeting_id)
        .group_by(col(BallotToken.group_key), col(BallotToken.used), col(BallotToken.void))
    ).all()
    counts: dict[str | None, dict[str, int]] = {}
    for group, used, void, n in rows:
        entry = counts.setdefault(group, {"issued": 0, "spent": 0, "void": 0})
        if void:
            entry["void"] += n
        else:
            entry["issued"] += n
            entry["spent"] += n if used else 0
    return counts


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
    meeting_id: int | None = None  # set when a ballot was stored: that meeting's tally changed


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
    return Outcome(status="counted", meeting_id=info.meeting.id)


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


# ---- phone pages ------------------------------------------------------------------------------

TokenState = Literal["unknown", "void", "spent", "ready"]


@dataclass(frozen=True)
class BallotAccess:
    """What a phone holding a code may learn: the code's state and, when it has one, its meeting."""

    state: TokenState
    meeting_state: str = ""
    title: str = ""
    unit_name: str = ""
    template: BallotTemplate | None = None


def ballot_access(*, conn: Session | Connection, code: str) -> BallotAccess:
    token = conn.execute(
        select(col(BallotToken.meeting_id), col(BallotToken.used), col(BallotToken.void)).where(
            col(BallotToken.hash) == tokens_mod.token_hash(code)
        )
    ).first()
    if token is None:
        return BallotAccess("unknown")
    meeting_id, used, void = token
    state, title, template_id, version, unit_name = conn.execute(
        select(
            col(Meeting.state), col(Meeting.title), col(Meeting.template_id), col(Meeting.template_version),
            col(Unit.name),
        )
        .join(Unit, col(Unit.id) == col(Meeting.unit_id))
        .where(col(Meeting.id) == meeting_id)
    ).one()
    template = get_template(session=conn, template_id=template_id, version=version)
    token_state: TokenState = "void" if void else "spent" if used else "ready"
    return BallotAccess(token_state, state, title, unit_name, template)


@dataclass(frozen=True)
class ScreenMeeting:
    id: int
    title: str
    unit_name: str
    mode: str
    state: str
    attendance: int
    claimed: int


def _live_tokens(conn: Session | Connection, meeting_id: int) -> int:
    return int(
        conn.execute(
            select(func.count()).select_from(BallotToken).where(
                col(BallotToken.meeting_id) == meeting_id, col(BallotToken.void).is_(False)
            )
        ).scalar_one()
    )


def screen_meeting(*, conn: Session | Connection, meeting_id: int) -> ScreenMeeting | None:
    """A meeting as the projector and the claim page show it; claimed counts every live code."""
    row = conn.execute(
        select(col(Meeting.title), col(Unit.name), col(Meeting.mode), col(Meeting.state), col(Meeting.attendance))
        .join(Unit, col(Unit.id) == col(Meeting.unit_id))
        .where(col(Meeting.id) == meeting_id)
    ).first()
    if row is None:
        return None
    title, unit_name, mode, state, attendance = row
    return ScreenMeeting(meeting_id, title, unit_name, mode, state, attendance, _live_tokens(conn, meeting_id))


def claim_screen_code(*, conn: Connection, meeting_id: int) -> str | None:
    """Take one code from an open screen meeting's pool, whose size is the declared attendance.

    None when the meeting is not an open screen meeting or the pool is empty. The meeting row is
    locked first (SQLite's write transaction does the same), so two phones claiming together
    cannot both take the last code. Only the code's hash is kept: no time, no audit event, nothing
    of the phone.
    """
    row = conn.execute(
        select(col(Meeting.mode), col(Meeting.state), col(Meeting.attendance))
        .where(col(Meeting.id) == meeting_id)
        .with_for_update()
    ).first()
    if row is None or row.mode != "screen" or row.state != "open":
        return None
    if _live_tokens(conn, meeting_id) >= row.attendance:
        return None
    code = tokens_mod.mint_code()
    conn.execute(
        insert(BallotToken).values(
            hash=tokens_mod.token_hash(code), meeting_id=meeting_id, group_key=None, used=False, void=False
        )
    )
    return code


def is_code_of_meeting(*, conn: Session | Connection, code: str, meeting_id: int) -> bool:
    """Whether a code is a live code of this meeting: a phone's own earlier claim."""
    found = conn.execute(
        select(col(BallotToken.hash)).where(
            col(BallotToken.hash) == tokens_mod.token_hash(code),
            col(BallotToken.meeting_id) == meeting_id,
            col(BallotToken.void).is_(False),
        )
    ).first()
    return found is not None


# ---- results export and webhooks ----------------------------------------------------------------

DeliveryStatus = Literal["pending", "delivered", "failed", "cancelled"]


def _latest_results() -> Any:
    """Each closed meeting's latest result, with its meeting, unit and category."""
    latest = (
        select(col(Result.meeting_id).label("meeting_id"), func.max(col(Result.version)).label("version"))
        .group_by(col(Result.meeting_id))
        .subquery()
    )
    return (
        select(Result, Meeting, Unit, Category)
        .join(latest, and_(col(Result.meeting_id) == latest.c.meeting_id, col(Result.version) == latest.c.version))
        .join(Meeting, col(Meeting.id) == col(Result.meeting_id))
        .join(Unit, col(Unit.id) == col(Meeting.unit_id))
        .join(Category, col(Category.key) == col(Unit.category_key))
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
    after: tuple[dt.datetime, int] | None = None,
    limit: int | None = None,
) -> list[ResultRecord]:
    """Every closed meeting's latest result, in the order of closing, then of meeting id.

    A result's place depends on when it was closed only, so a client paging with a cursor neither
    repeats nor skips a result when more meetings close meanwhile. A reopened meeting leaves the
    list until it closes again; it then returns as a new version with a later close time, which
    ``since`` finds.
    """
    check_result_filters(session=session, category=category, unit=unit)
    query = _latest_results()
    if year is not None:
        query = query.where(col(Meeting.year) == year)
    if category is not None:
        query = query.where(col(Unit.category_key) == category)
    if unit is not None:
        query = query.where(col(Unit.code) == unit)
    if since is not None:
        query = query.where(col(Result.created_at) > since)
    if after is not None:
        at, meeting_id = after
        query = query.where(
            or_(
                col(Result.created_at) > at,
                and_(col(Result.created_at) == at, col(Result.meeting_id) > meeting_id),
            )
        )
    query = query.order_by(col(Result.created_at), col(Result.meeting_id))
    if limit is not None:
        query = query.limit(limit)
    return [
        result_record(meeting=meeting, unit=unit_row, category=category_row, result=result)
        for result, meeting, unit_row, category_row in session.execute(query).all()
    ]


def unit_year_result(*, session: Session, unit_code: str, year: int) -> ResultRecord:
    """The unit's on-site result of the year: its latest closed meeting's latest version."""
    records = list_results(session=session, unit=unit_code, year=year)
    if not records:
        raise NotFound("results_none", unit=unit_code, year=year)
    return max(records, key=lambda r: (r.meeting_date, r.meeting_id))


def overview_units(*, session: Session, year: int, category: str | None = None) -> list[UnitYears]:
    check_result_filters(session=session, category=category)
    years = review_window(year)
    reviewed: dict[int, set[int]] = {}
    for unit_id, meeting_year in session.execute(
        select(col(Meeting.unit_id), col(Meeting.year))
        .where(col(Meeting.state) == "closed", col(Meeting.year).in_(years))
        .distinct()
    ).all():
        reviewed.setdefault(unit_id, set()).add(meeting_year)
    latest: dict[str, ResultRecord] = {}
    for record in list_results(session=session, year=year, category=category):
        held = latest.get(record.unit_code)
        if held is None or (record.meeting_date, record.meeting_id) > (held.meeting_date, held.meeting_id):
            latest[record.unit_code] = record
    names = {c.key: c.name for c in categories(session=session)}
    return [
        UnitYears(
            code=unit.code,
            name=unit.name,
            category=unit.category_key,
            category_name=names[unit.category_key],
            years_reviewed=frozenset(reviewed.get(unit.id, set())),  # type: ignore[arg-type]
            result=latest.get(unit.code),
        )
        for unit in list_units(session=session, category=category)
    ]


@dataclass(frozen=True)
class AuditMaterial:
    meeting: Meeting
    unit: Unit
    category: Category
    result: Result
    template: BallotTemplate
    ballots: list[StoredBallot]


def audit_material(*, session: Session, actor: str, meeting_id: int) -> AuditMaterial:
    """What the audit export of a closed meeting is made of; the export itself is audited."""
    result = latest_result(session=session, meeting_id=meeting_id)
    meeting = get_meeting(session=session, meeting_id=meeting_id)
    unit, category = unit_of(session=session, meeting=meeting)
    template = get_template(session=session, template_id=meeting.template_id, version=meeting.template_version)
    ballots = meeting_ballots(conn=session, meeting_id=meeting_id)
    audit(
        session=session,
        actor=actor,
        action="meeting.audit_export",
        meeting_id=meeting_id,
        detail={"version": result.version, "ballots": len(ballots)},
    )
    session.commit()
    return AuditMaterial(meeting, unit, category, result, template, ballots)


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
    now = utcnow()
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


def has_due_deliveries(*, conn: Session | Connection, now: dt.datetime) -> bool:
    """A read that takes no lock: workers claim (and lock) only when something is due."""
    found = conn.execute(
        select(col(WebhookDelivery.id))
        .where(col(WebhookDelivery.status) == "pending", col(WebhookDelivery.next_attempt_at) <= now)
        .limit(1)
    ).first()
    return found is not None


def claim_deliveries(*, session: Session, now: dt.datetime, lease_seconds: float, limit: int) -> list[ClaimedDelivery]:
    """Take up to ``limit`` due deliveries for this worker until the lease ends.

    FOR UPDATE SKIP LOCKED: workers on PostgreSQL claim disjoint rows without waiting for each
    other. SQLite has no row locks; its write transaction (BEGIN IMMEDIATE) serialises claims.
    """
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
                row.id, endpoint.url, endpoint.secret, row.event, row.payload, row.attempts, row.retry_from,
                row.meeting_id, row.created_at,
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
    session.add(
        WebhookAttempt(
            delivery_id=delivery_id, number=attempt, at=now, status_code=status_code, error=error,
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
