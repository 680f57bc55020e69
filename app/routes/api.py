"""The JSON API under /api/v1. Thin: every route hands over to app.store."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from app import store
from app.auth import Principal
from app.errors import NotFound
from app.messages import LANGS, render
from app.routes.access import (
    Admin,
    ManagedMeeting,
    Reader,
    SeenMeeting,
    Staff,
    ensure_manages,
    managed_meeting,
)
from app.routes.deps import (
    KeysDep,
    SessionDep,
    SettingsDep,
    get_writer,
    language,
    notify_changed,
    wrong_code,
)
from app.routes.openapi import operation_id
from app.routes.views import tally_public
from app.schemas import (
    BallotReceipt,
    BallotSubmit,
    CloseBody,
    ErrorBody,
    ImportReport,
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
    UnitUpdate,
    VoidMeetingBody,
)
from app.settings import Settings
from app.tables import Meeting, Result, Unit
from app.templates import BallotTemplate, parse_template
from app.tokens import normalize, printable

ERRORS: dict[int | str, dict[str, Any]] = {status: {"model": ErrorBody} for status in (401, 403, 404, 409, 413, 422)}

router = APIRouter(prefix="/api/v1", responses=ERRORS)


async def api_actor(principal: Admin) -> str:
    """The administrator behind a request, as the audit log names them."""
    return principal.name


ActorDep = Annotated[str, Depends(api_actor)]


# ---- units ------------------------------------------------------------------------------------


def unit_public(session: Session, unit: Unit, years: list[int] | None = None) -> UnitPublic:
    names = {c.key: c.name for c in store.categories(session=session)}
    if years is None:
        years = store.review_years(session=session, unit_ids=[unit.id])[unit.id]  # type: ignore[list-item,index]
    return UnitPublic.from_row(unit, category_name=names[unit.category_key], reviewed_years=years)


@router.post("/units", status_code=201, tags=["units"])
def create_unit(body: UnitCreate, session: SessionDep, principal: Staff) -> UnitPublic:
    ensure_manages(principal, body.category)
    unit = store.create_unit(
        session=session, actor=principal.name, code=body.code, name=body.name, category=body.category
    )
    return unit_public(session, unit)


@router.get("/units", tags=["units"])
def list_units(session: SessionDep, principal: Reader, category: str | None = None) -> list[UnitPublic]:
    units = [unit for unit in store.list_units(session=session, category=category) if principal.sees(unit.category_key)]
    years = store.review_years(session=session, unit_ids=[unit.id for unit in units])  # type: ignore[misc]
    return [unit_public(session, unit, years[unit.id]) for unit in units]  # type: ignore[index]


@router.patch("/units/{code}", tags=["units"])
def update_unit(code: str, body: UnitUpdate, session: SessionDep, principal: Staff) -> UnitPublic:
    unit = store.find_unit(session=session, code=code)
    if unit is None:
        raise NotFound("unit_not_found", code=code)
    ensure_manages(principal, unit.category_key)
    ensure_manages(principal, body.category)
    unit = store.update_unit(session=session, actor=principal.name, code=code, name=body.name, category=body.category,
                             reviewed_years=body.reviewed_years)
    return unit_public(session, unit)


@router.delete("/units/{code}", status_code=204, tags=["units"])
def delete_unit(code: str, session: SessionDep, principal: Staff) -> Response:
    """Delete a unit entered by mistake (or the demo unit) with its meetings that never opened;
    409 once one of its meetings has opened or has codes."""
    unit = store.find_unit(session=session, code=code)
    if unit is None:
        raise NotFound("unit_not_found", code=code)
    ensure_manages(principal, unit.category_key)
    store.delete_unit(session=session, actor=principal.name, code=code)
    return Response(status_code=204)


@router.post(
    "/units/import",
    status_code=201,
    tags=["units"],
    openapi_extra={"requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}, "required": True}},
)
async def import_units(request: Request, session: SessionDep, principal: Staff) -> ImportReport:
    """CSV (UTF-8 with or without BOM, or GBK) or XLSX with the header `code,name,category` or
    `单位编码,单位名称,单位类别`, optionally `往年测评年度` (`reviewed_years`); categories by key or Chinese
    name. A known code updates its unit. All rows or none."""
    data = await request.body()
    # The database work off the event loop: it may wait for SQLite's write lock.
    return await run_in_threadpool(_import_units, session, principal, data)


def _import_units(session: Session, principal: Principal, data: bytes) -> ImportReport:
    allowed = [c.key for c in store.categories(session=session) if principal.manages(c.key)]
    outcome = store.import_units(session=session, actor=principal.name, data=data, categories=allowed)
    changed = outcome.created + outcome.updated
    return ImportReport(imported=len(changed), created=len(outcome.created), updated=len(outcome.updated),
                        unchanged=outcome.unchanged, units=[unit_public(session, unit) for unit in changed])


# ---- templates --------------------------------------------------------------------------------


@router.get("/templates", tags=["templates"])
def list_templates(session: SessionDep, _: Reader) -> list[TemplateSummary]:
    return [
        TemplateSummary(id=tid, version=versions[-1], name=name, versions=versions)
        for tid, versions, name in store.list_templates(session=session)
    ]


@router.get("/templates/{template_id}", tags=["templates"])
def get_template(template_id: str, session: SessionDep, _: Reader, version: int | None = None) -> BallotTemplate:
    return store.get_template(session=session, template_id=template_id, version=version)


@router.post("/templates", status_code=201, tags=["templates"])
def create_template(session: SessionDep, actor: ActorDep, body: Annotated[dict[str, Any], Body()]) -> BallotTemplate:
    """A new template, or the next version of an existing one. Validated before anything is stored."""
    return store.save_template(session=session, actor=actor, template=parse_template(body))


# ---- meetings ---------------------------------------------------------------------------------


def meeting_public(session: Session, settings: Settings, meeting: Meeting) -> MeetingPublic:
    unit, category = store.unit_of(session=session, meeting=meeting)
    return MeetingPublic.from_row(meeting, unit=unit, category=category)


@router.post("/meetings", status_code=201, tags=["meetings"])
def create_meeting(body: MeetingCreate, session: SessionDep, settings: SettingsDep, principal: Staff) -> MeetingPublic:
    unit = store.find_unit(session=session, code=body.unit_code)
    if unit is None:
        raise NotFound("unit_not_found", code=body.unit_code)
    ensure_manages(principal, unit.category_key)
    meeting = store.create_meeting(session=session, actor=principal.name, body=body)
    return meeting_public(session, settings, meeting)


@router.get("/meetings", tags=["meetings"])
def list_meetings(
    session: SessionDep, settings: SettingsDep, principal: Reader, year: int | None = None
) -> list[MeetingPublic]:
    visible = principal.visible(c.key for c in store.categories(session=session))
    meetings = store.list_meetings(session=session, year=year, categories=visible)
    return [meeting_public(session, settings, m) for m in meetings]


@router.get("/meetings/{meeting_id}", tags=["meetings"])
def get_meeting(meeting: SeenMeeting, session: SessionDep, settings: SettingsDep) -> MeetingPublic:
    return meeting_public(session, settings, meeting)


@router.post("/meetings/{meeting_id}/open", tags=["meetings"])
def open_meeting(
    meeting_id: int, _: ManagedMeeting, session: SessionDep, settings: SettingsDep, principal: Staff, request: Request
) -> MeetingPublic:
    meeting = store.open_meeting(session=session, actor=principal.name, meeting_id=meeting_id)
    notify_changed(request, meeting_id)
    return meeting_public(session, settings, meeting)


@router.post("/meetings/{meeting_id}/close", tags=["meetings"])
def close_meeting(
    meeting_id: int,
    session: SessionDep,
    settings: SettingsDep,
    keys: KeysDep,
    principal: Staff,
    request: Request,
    body: CloseBody | None = None,
) -> ResultPublic:
    """Freeze the meeting and compute its result once; answers the frozen result.

    409 with fewer than K ballots, and after a reopen when the new version would add fewer than K
    ballots to the last: then only an administrator may close, giving `risk_reason`.
    """
    managed_meeting(session, principal, meeting_id)
    store.close_meeting(
        session=session, actor=principal.name, meeting_id=meeting_id, k=settings.k_anonymity, keys=keys,
        risk_reason=body.risk_reason if body is not None else "", may_accept_risk=principal.role == "admin",
    )
    notify_changed(request, meeting_id)
    return result_public(session, store.latest_result(session=session, meeting_id=meeting_id))


@router.post("/meetings/{meeting_id}/reopen", tags=["meetings"])
def reopen_meeting(
    meeting_id: int, body: ReopenBody, session: SessionDep, settings: SettingsDep, principal: Staff, request: Request
) -> MeetingPublic:
    managed_meeting(session, principal, meeting_id)
    meeting = store.reopen_meeting(session=session, actor=principal.name, meeting_id=meeting_id, reason=body.reason)
    notify_changed(request, meeting_id)
    return meeting_public(session, settings, meeting)


@router.post("/meetings/{meeting_id}/void", tags=["meetings"])
def void_meeting(
    meeting_id: int,
    body: VoidMeetingBody,
    session: SessionDep,
    settings: SettingsDep,
    principal: Staff,
    request: Request,
) -> MeetingPublic:
    """作废: the meeting stops counting, in any state, for good; the reason goes to the audit log.
    Open: it takes no more ballots. Closed: its result leaves the results export (each version stays
    readable by number) and webhooks hear `meeting.voided`. Then another meeting of the unit and
    year may be closed and count."""
    managed_meeting(session, principal, meeting_id)
    meeting = store.void_meeting(session=session, actor=principal.name, meeting_id=meeting_id, reason=body.reason)
    notify_changed(request, meeting_id)
    return meeting_public(session, settings, meeting)


@router.delete("/meetings/{meeting_id}", status_code=204, tags=["meetings"])
def delete_meeting(meeting_id: int, _: ManagedMeeting, session: SessionDep, principal: Staff) -> Response:
    """Delete a meeting that never opened, with any codes minted for it; 409 once it has opened
    (void it instead)."""
    store.delete_meeting(session=session, actor=principal.name, meeting_id=meeting_id)
    return Response(status_code=204)


@router.post("/meetings/{meeting_id}/tokens", status_code=201, tags=["meetings"])
def mint_tokens(
    meeting_id: int,
    body: MintBody,
    session: SessionDep,
    settings: SettingsDep,
    keys: KeysDep,
    principal: Staff,
    request: Request,
) -> MintedTokens:
    """Mint single-use ballot codes. They are shown in this answer only: the service keeps hashes."""
    managed_meeting(session, principal, meeting_id)
    minted = store.mint_tokens(
        session=session, actor=principal.name, meeting_id=meeting_id, count=body.count, group=body.group, keys=keys
    )
    notify_changed(request, meeting_id)
    base = settings.base_url.rstrip("/")
    return MintedTokens(
        tokens=[
            MintedToken(code=code, printable=printable(code), group=group, url=f"{base}/b/{code}")
            for code, group in minted
        ]
    )


@router.get("/meetings/{meeting_id}/tally", tags=["results"])
def get_tally(meeting_id: int, _: SeenMeeting, session: SessionDep, settings: SettingsDep) -> TallyPublic:
    """Live turnout; figures as last published, which move only when a group of at least K ballots
    is mixed into the box, and at close; no rater group apart until close."""
    return tally_public(session, meeting_id, settings.k_anonymity)


def result_public(session: Session, result: Result) -> ResultPublic:
    versions = [r.version for r in store.results_of(session=session, meeting_id=result.meeting_id)]
    return ResultPublic.from_row(result, versions=versions)


@router.get("/meetings/{meeting_id}/result", tags=["results"])
def get_result(
    meeting_id: int, _: SeenMeeting, session: SessionDep, version: Annotated[int | None, Query(ge=1)] = None
) -> ResultPublic:
    """The frozen result of a closed meeting (409 while it is not closed); with `version`, that
    version, whatever the meeting's state now (404 if it has none of that number)."""
    if version is None:
        return result_public(session, store.latest_result(session=session, meeting_id=meeting_id))
    return result_public(session, store.result_version(session=session, meeting_id=meeting_id, version=version))


# ---- ballots ----------------------------------------------------------------------------------

COUNTED = {lang: render("ballot_counted", lang) for lang in LANGS}
ALREADY = {lang: render("ballot_already", lang) for lang in LANGS}


# The phones' one route has a router of its own, included first: 200 phones in a minute should not
# have their path tried against every organizer route before their own.
ballots_router = APIRouter(prefix="/api/v1", responses=ERRORS, generate_unique_id_function=operation_id)


@ballots_router.post(
    "/ballots",
    status_code=201,
    tags=["ballots"],
    responses={
        200: {"model": BallotReceipt, "description": "already counted: the code was spent before, whatever comes now"},
        429: {"model": ErrorBody},
    },
)
async def submit_ballot(body: BallotSubmit, request: Request, response: Response) -> BallotReceipt:
    """Cast a ballot with a single-use code. No API key: the code is the right to vote.

    201 when counted; 200 "already counted" when the code was spent before, for any answers sent
    with it, the same or different: the service keeps nothing of a ballot to compare them with,
    so its answer cannot prove to anyone how a code was used. 429 for a wrong code from an address
    that has been guessing (a valid code is never refused for it).
    """
    # Plain calls, not dependencies: on the path 200 phones take at once, FastAPI solves each
    # sub-dependency with a round of its own (cache keys, query and cookie parsing), measured at
    # about 8% of a submit.
    writer = get_writer(request)
    code = normalize(body.token)
    if code is None:
        wrong_code(request)
        raise NotFound("token_unknown")
    outcome = await writer.submit(store.Submission(code=code, answers=body.answers, comment=body.comment))
    if outcome.error is not None:
        if outcome.error.problem.code == "token_unknown":
            wrong_code(request)
        raise outcome.error
    lang = language(request)
    if outcome.status == "already_counted":
        response.status_code = 200
        return BallotReceipt(status="already_counted", message=ALREADY[lang])
    return BallotReceipt(status="counted", message=COUNTED[lang])
