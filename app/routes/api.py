"""The JSON API under /api/v1. Thin: every route hands over to app.store."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from app import store
from app.errors import Forbidden, NotFound, Unauthorized
from app.models import (
    BallotReceipt,
    BallotSubmit,
    ErrorBody,
    FiguresPublic,
    GroupPublic,
    ImportReport,
    Meeting,
    MeetingCreate,
    MeetingPublic,
    MintBody,
    MintedToken,
    MintedTokens,
    ReopenBody,
    ResultPublic,
    TallyPublic,
    TemplateSummary,
    UnitCreate,
    UnitPublic,
)
from app.routes.deps import SessionDep, SettingsDep, WriterDep, language
from app.settings import Settings
from app.templates import BallotTemplate, parse_template
from app.tokens import normalize, printable

ERRORS: dict[int | str, dict[str, Any]] = {status: {"model": ErrorBody} for status in (401, 403, 404, 409, 413, 422)}

router = APIRouter(prefix="/api/v1", responses=ERRORS)
bearer = HTTPBearer(auto_error=False)


def api_actor(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    """The organizer behind an API key, as the audit log names them."""
    if credentials is None:
        raise Unauthorized("not_authenticated")
    key = store.authenticate_api_key(session=session, key=credentials.credentials)
    if key is None:
        raise Unauthorized("not_authenticated")
    if "admin" not in key.scopes.split():
        raise Forbidden("forbidden")
    return f"api:{key.name}"


ActorDep = Annotated[str, Depends(api_actor)]


# ---- units ------------------------------------------------------------------------------------


def unit_public(session: Session, unit: Any) -> UnitPublic:
    names = {c.key: c.name for c in store.categories(session=session)}
    return UnitPublic(
        code=unit.code, name=unit.name, category=unit.category_key, category_name=names[unit.category_key]
    )


@router.post("/units", status_code=201, tags=["units"])
def create_unit(body: UnitCreate, session: SessionDep, actor: ActorDep) -> UnitPublic:
    unit = store.create_unit(session=session, actor=actor, code=body.code, name=body.name, category=body.category)
    return unit_public(session, unit)


@router.get("/units", tags=["units"])
def list_units(session: SessionDep, _: ActorDep, category: str | None = None) -> list[UnitPublic]:
    return [unit_public(session, unit) for unit in store.list_units(session=session, category=category)]


@router.post(
    "/units/import",
    status_code=201,
    tags=["units"],
    openapi_extra={"requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}, "required": True}},
)
async def import_units(request: Request, session: SessionDep, actor: ActorDep) -> ImportReport:
    """CSV with the header `code,name,category`, UTF-8 with or without BOM. All rows or none."""
    data = await request.body()
    units = store.import_units(session=session, actor=actor, data=data)
    return ImportReport(imported=len(units), units=[unit_public(session, unit) for unit in units])


# ---- templates --------------------------------------------------------------------------------


@router.get("/templates", tags=["templates"])
def list_templates(session: SessionDep, _: ActorDep) -> list[TemplateSummary]:
    return [
        TemplateSummary(id=tid, version=versions[-1], name=name, versions=versions)
        for tid, versions, name in store.list_templates(session=session)
    ]


@router.get("/templates/{template_id}", tags=["templates"])
def get_template(template_id: str, session: SessionDep, _: ActorDep, version: int | None = None) -> BallotTemplate:
    return store.get_template(session=session, template_id=template_id, version=version)


@router.post("/templates", status_code=201, tags=["templates"])
def create_template(session: SessionDep, actor: ActorDep, body: Annotated[dict[str, Any], Body()]) -> BallotTemplate:
    """A new template, or the next version of an existing one. Validated before anything is stored."""
    return store.save_template(session=session, actor=actor, template=parse_template(body))


# ---- meetings ---------------------------------------------------------------------------------


def meeting_public(session: Session, settings: Settings, meeting: Meeting) -> MeetingPublic:
    unit, category = store.unit_of(session=session, meeting=meeting)
    return MeetingPublic(
        id=meeting.id,
        unit_code=unit.code,
        unit_name=unit.name,
        category=category.key,
        year=meeting.year,
        date=meeting.date,
        title=meeting.title,
        template_id=meeting.template_id,
        template_version=meeting.template_version,
        mode=meeting.mode,
        attendance=meeting.attendance,
        groups=[GroupPublic(**group) for group in json.loads(meeting.groups)],
        trim=meeting.trim,
        component_weight=meeting.component_weight,
        flagged_rule=meeting.flagged_rule,
        state=meeting.state,
    )


@router.post("/meetings", status_code=201, tags=["meetings"])
def create_meeting(body: MeetingCreate, session: SessionDep, settings: SettingsDep, actor: ActorDep) -> MeetingPublic:
    meeting = store.create_meeting(session=session, actor=actor, body=body)
    return meeting_public(session, settings, meeting)


@router.get("/meetings", tags=["meetings"])
def list_meetings(
    session: SessionDep, settings: SettingsDep, _: ActorDep, year: int | None = None
) -> list[MeetingPublic]:
    return [meeting_public(session, settings, m) for m in store.list_meetings(session=session, year=year)]


@router.get("/meetings/{meeting_id}", tags=["meetings"])
def get_meeting(meeting_id: int, session: SessionDep, settings: SettingsDep, _: ActorDep) -> MeetingPublic:
    return meeting_public(session, settings, store.get_meeting(session=session, meeting_id=meeting_id))


@router.post("/meetings/{meeting_id}/open", tags=["meetings"])
def open_meeting(meeting_id: int, session: SessionDep, settings: SettingsDep, actor: ActorDep) -> MeetingPublic:
    meeting = store.open_meeting(session=session, actor=actor, meeting_id=meeting_id)
    return meeting_public(session, settings, meeting)


@router.post("/meetings/{meeting_id}/close", tags=["meetings"])
def close_meeting(meeting_id: int, session: SessionDep, settings: SettingsDep, actor: ActorDep) -> ResultPublic:
    """Freeze the meeting and compute its result once; answers the frozen result."""
    store.close_meeting(session=session, actor=actor, meeting_id=meeting_id, k=settings.k_anonymity)
    return result_public(store.latest_result(session=session, meeting_id=meeting_id))


@router.post("/meetings/{meeting_id}/reopen", tags=["meetings"])
def reopen_meeting(
    meeting_id: int, body: ReopenBody, session: SessionDep, settings: SettingsDep, actor: ActorDep
) -> MeetingPublic:
    meeting = store.reopen_meeting(session=session, actor=actor, meeting_id=meeting_id, reason=body.reason)
    return meeting_public(session, settings, meeting)


@router.post("/meetings/{meeting_id}/tokens", status_code=201, tags=["meetings"])
def mint_tokens(
    meeting_id: int, body: MintBody, session: SessionDep, settings: SettingsDep, actor: ActorDep
) -> MintedTokens:
    """Mint single-use ballot codes. They are shown in this answer only: the service keeps hashes."""
    minted = store.mint_tokens(session=session, actor=actor, meeting_id=meeting_id, count=body.count, group=body.group)
    base = settings.base_url.rstrip("/")
    return MintedTokens(
        tokens=[
            MintedToken(code=code, printable=printable(code), group=group, url=f"{base}/b/{code}")
            for code, group in minted
        ]
    )


@router.get("/meetings/{meeting_id}/tally", tags=["results"])
def get_tally(meeting_id: int, session: SessionDep, settings: SettingsDep, _: ActorDep) -> TallyPublic:
    """Live turnout; figures as last published, which move only every K ballots and at close."""
    meeting, row, issued = store.tally(session=session, meeting_id=meeting_id)
    return TallyPublic(
        meeting_id=meeting_id,
        state=meeting.state,
        attendance=meeting.attendance,
        tokens_issued=issued,
        ballots_counted=row.ballot_count,
        k=settings.k_anonymity,
        published_at_count=row.published_count,
        figures=FiguresPublic.model_validate_json(row.published) if row.published else None,
    )


def result_public(result: Any) -> ResultPublic:
    return ResultPublic(
        meeting_id=result.meeting_id,
        version=result.version,
        digest=result.digest,
        closed_at=result.created_at,
        figures=FiguresPublic.model_validate_json(result.figures),
    )


@router.get("/meetings/{meeting_id}/result", tags=["results"])
def get_result(meeting_id: int, session: SessionDep, _: ActorDep) -> ResultPublic:
    """The frozen result of a closed meeting (409 while it is not closed)."""
    return result_public(store.latest_result(session=session, meeting_id=meeting_id))


# ---- ballots ----------------------------------------------------------------------------------

COUNTED = {
    "zh": "您的测评票已计入。投票是匿名的，任何人都无法知道您的选择。",
    "en": "Your ballot has been counted. It is anonymous: nobody can tell what you chose.",
}
ALREADY = {
    "zh": "这张测评票此前已经计入，无需再次提交。",
    "en": "This ballot was already counted; there is nothing more to do.",
}


@router.post(
    "/ballots",
    status_code=201,
    tags=["ballots"],
    responses={200: {"model": BallotReceipt, "description": "already counted (a retry)"}},
)
async def submit_ballot(body: BallotSubmit, request: Request, response: Response, writer: WriterDep) -> BallotReceipt:
    """Cast a ballot with a single-use code. No API key: the code is the right to vote.

    201 when counted; 200 when the same code comes again with the same answers (a retry);
    409 when a spent code comes with different answers.
    """
    code = normalize(body.token)
    if code is None:
        raise NotFound("token_unknown")
    outcome = await writer.submit(store.Submission(code=code, answers=body.answers, comment=body.comment))
    if outcome.error is not None:
        raise outcome.error
    lang = language(request)
    if outcome.status == "already_counted":
        response.status_code = 200
        return BallotReceipt(status="already_counted", message=ALREADY[lang])
    return BallotReceipt(status="counted", message=COUNTED[lang])
