"""Meetings: the list by date and category, creating one, its lifecycle, and its ballot codes."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from app import store
from app.auth import Principal
from app.errors import Conflict, DomainError, Forbidden
from app.meeting_form import default_title, group_rows, meeting_body
from app.routes.access import ManagedMeeting, Reader, SeenMeeting, Staff, ensure_manages
from app.routes.cards import card_sheet
from app.routes.console import audit_rows, field_errors, flash, redirect, render
from app.routes.deps import SessionDep, SettingsDep, notify_changed
from app.routes.pages import Page, screen_path
from app.schemas import CardsBody
from app.settings import Settings
from app.store import DEFAULT_GROUPS
from app.tables import Meeting

router = APIRouter(include_in_schema=False)


def _visible(session: Session, principal: Principal) -> list[str]:
    return principal.visible(c.key for c in store.categories(session=session))


@router.get("/meetings")
def meetings_page(
    request: Request, session: SessionDep, principal: Reader, year: int | None = None, category: str | None = None
) -> HTMLResponse:
    visible = _visible(session, principal)
    chosen = [category] if category in visible else visible
    meetings = store.list_meetings(session=session, year=year, categories=chosen)
    rows: list[dict[str, Any]] = []
    for meeting in meetings:
        unit, cat = store.unit_of(session=session, meeting=meeting)
        rows.append({"meeting": meeting, "unit": unit, "category": cat})
    months: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        months.setdefault(row["meeting"].date.strftime("%Y年%m月"), []).append(row)
    categories = [c for c in store.categories(session=session) if c.key in visible]
    years = sorted({m.year for m in store.list_meetings(session=session, categories=visible)}, reverse=True)
    return render(request, "organizer/meetings.html", principal, months=months, categories=categories,
                  years=years, year=year, category=category,
                  can_create=any(principal.manages(c.key) for c in categories))


def _meeting_form_context(session: Session, principal: Principal) -> dict[str, Any]:
    units = [u for u in store.list_units(session=session) if principal.manages(u.category_key)]
    templates = store.list_templates(session=session)
    return {"units": units, "templates": templates, "default_groups": DEFAULT_GROUPS}


@router.get("/meetings/new")
def new_meeting_page(request: Request, session: SessionDep, principal: Staff, unit: str = "") -> HTMLResponse:
    today = dt.date.today()
    chosen = store.find_unit(session=session, code=unit) if unit else None
    form = {"unit_code": unit, "year": today.year, "date": today.isoformat(), "mode": "cards", "attendance": 35,
            "trim": 1, "component_weight": "0.4", "flagged_rule": "count", "template": "default",
            "title": default_title(chosen.name, today.year) if chosen is not None else ""}
    for index, (key, name) in enumerate(DEFAULT_GROUPS):
        form[f"group_key_{index}"], form[f"group_name_{index}"] = key, name
    return render(request, "organizer/meeting_form.html", principal, form=form,
                  **_meeting_form_context(session, principal))


@router.post("/meetings/new")
async def create_meeting(request: Request, session: SessionDep, principal: Staff) -> Response:
    raw = await request.form()  # the group rows are numbered fields: read them all
    form = {key: str(value) for key, value in raw.items() if isinstance(value, str)}
    # The database work off the event loop: it may wait for SQLite's write lock.
    return await run_in_threadpool(_create_meeting, request, session, principal, form)


def _create_meeting(request: Request, session: Session, principal: Principal, form: dict[str, str]) -> Response:
    try:
        unit = store.find_unit(session=session, code=form.get("unit_code", ""))
        if unit is not None and not form.get("title", "").strip() and form.get("year", "").strip().isdigit():
            form = {**form, "title": default_title(unit.name, form["year"].strip())}
        body = meeting_body(form)
        if unit is not None:
            ensure_manages(principal, unit.category_key)
        meeting = store.create_meeting(session=session, actor=principal.name, body=body)
    except DomainError as error:
        return render(request, "organizer/meeting_form.html", principal, status=error.status, form=form,
                      errors=field_errors(error, "form"), **_meeting_form_context(session, principal))
    flash(request, f"已创建评议会“{meeting.title}”。下一步：发放测评卡，然后开启评议会。")
    return redirect(f"/meetings/{meeting.id}")


def _meeting_view(session: Session, meeting: Meeting, settings: Settings) -> dict[str, Any]:
    k = settings.k_anonymity
    unit, category = store.unit_of(session=session, meeting=meeting)
    counts = store.token_counts(session=session, meeting_id=meeting.id)  # type: ignore[arg-type]
    shown = store.shown_groups(session=session, meeting=meeting)
    specs = store.group_specs(meeting)
    groups, ungrouped = group_rows(specs, counts, state=meeting.state, shown=shown, k=k)
    view = store.tally(session=session, meeting_id=meeting.id)  # type: ignore[arg-type]
    template = store.get_template(session=session, template_id=meeting.template_id, version=meeting.template_version)
    events = store.list_audit(session=session, meeting_id=meeting.id, limit=20)
    voided = next((e for e in events if e.action == "meeting.void"), None) if meeting.state == "voided" else None
    versions = [r.version for r in store.results_of(session=session, meeting_id=meeting.id)]  # type: ignore[arg-type]
    return {"meeting": meeting, "unit": unit, "category": category, "groups": groups, "ungrouped": ungrouped,
            "weighted": any(g["spec"].weight for g in groups), "template_name": template.name,
            "tally": view.tally, "counted": view.counted, "issued": view.issued, "k": k,
            "screen_url": projector_link(settings, meeting), "versions": versions,
            "void_reason": json.loads(voided.detail).get("reason") if voided is not None and voided.detail else None,
            "audit": audit_rows(session, events, {spec.key: spec.name for spec in specs})}


@router.get("/meetings/{meeting_id}")
def meeting_page(
    meeting: SeenMeeting, request: Request, session: SessionDep, settings: SettingsDep, principal: Reader
) -> HTMLResponse:
    view = _meeting_view(session, meeting, settings)
    return render(request, "organizer/meeting.html", principal, can_manage=principal.manages(view["category"].key),
                  **view)


def projector_link(settings: Settings, meeting: Meeting) -> str | None:
    """Screen meetings: the projector page (QR code, join link, turnout), one click from the console."""
    return screen_path(settings, meeting.id) if meeting.mode == "screen" else None  # type: ignore[arg-type]


@router.post("/meetings/{meeting_id}/open")
def open_meeting(
    meeting_id: int,
    meeting: ManagedMeeting,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: Staff,
    confirm: Annotated[str, Form()] = "",
) -> Response:
    view = _meeting_view(session, meeting, settings)
    short = [g for g in view["groups"] if g["short"]]
    if short and not confirm:
        # Below K a group's breakdown stays hidden; say so before the meeting starts, not after.
        return render(request, "organizer/meeting.html", principal, status=409, can_manage=True,
                      confirm_open=short, **view)
    store.open_meeting(session=session, actor=principal.name, meeting_id=meeting_id)
    notify_changed(request, meeting_id)
    flash(request, "评议会已开启，可以开始投票")
    return redirect(f"/meetings/{meeting_id}")


@router.post("/meetings/{meeting_id}/close")
def close_meeting(
    meeting_id: int,
    meeting: ManagedMeeting,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: Staff,
    confirm: Annotated[str, Form()] = "",
    risk_reason: Annotated[str, Form()] = "",
) -> Response:
    if not confirm and meeting.state == "open":
        # Say, at the moment of closing, how many of the declared attendance have not voted.
        view = _meeting_view(session, meeting, settings)
        voted = view["counted"]
        return render(request, "organizer/meeting.html", principal, can_manage=True,
                      confirm_close={"attendance": meeting.attendance, "voted": voted,
                                     "missing": max(meeting.attendance - voted, 0)},
                      form={"risk_reason": risk_reason}, **view)
    try:
        result = store.close_meeting(
            session=session, actor=principal.name, meeting_id=meeting_id, k=settings.k_anonymity,
            keys=request.app.state.keys, risk_reason=risk_reason, may_accept_risk=principal.role == "admin",
        )
    except (Conflict, Forbidden) as error:
        session.rollback()
        view = _meeting_view(session, meeting, settings)
        return render(request, "organizer/meeting.html", principal, status=error.status, can_manage=True,
                      close_refused=error.message(), close_risk=error.problem.code == "meeting_reclose_gap",
                      form={"risk_reason": risk_reason}, **view)
    notify_changed(request, meeting_id)
    flash(request, f"评议会已结束，结果已冻结（第 {result.version} 版，{result.ballot_count} 张票）")
    return redirect(f"/meetings/{meeting_id}")


@router.post("/meetings/{meeting_id}/reopen")
def reopen_meeting(
    meeting_id: int,
    meeting: ManagedMeeting,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: Staff,
    reason: Annotated[str, Form()] = "",
) -> Response:
    return _with_reason(request, session, settings, principal, meeting, reason, store.reopen_meeting, field="reason",
                        done="评议会已重新开启，理由已记入操作日志")


@router.post("/meetings/{meeting_id}/void-meeting")
def void_meeting(
    meeting_id: int,
    meeting: ManagedMeeting,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: Staff,
    reason: Annotated[str, Form()] = "",
) -> Response:
    """作废: the meeting stops counting (store.void_meeting); the reason goes to the audit log."""
    return _with_reason(request, session, settings, principal, meeting, reason, store.void_meeting,
                        field="void_reason", done="评议会已作废，不计入结果；理由已记入操作日志")


def _with_reason(request: Request, session: Session, settings: Settings, principal: Principal, meeting: Meeting,
                 reason: str, change: Callable[..., Meeting], *, field: str, done: str) -> Response:
    """A change of state that needs a written reason: on a refusal, the page again with the reason kept
    and the problem next to its field."""
    assert meeting.id is not None
    try:
        change(session=session, actor=principal.name, meeting_id=meeting.id, reason=reason)
    except DomainError as error:
        session.rollback()
        view = _meeting_view(session, meeting, settings)
        return render(request, "organizer/meeting.html", principal, status=error.status, can_manage=True,
                      form={field: reason}, errors=field_errors(error, field), **view)
    notify_changed(request, meeting.id)
    flash(request, done)
    return redirect(f"/meetings/{meeting.id}")


@router.post("/meetings/{meeting_id}/delete")
def delete_meeting(
    meeting_id: int,
    meeting: ManagedMeeting,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: Staff,
    confirm: Annotated[str, Form()] = "",
) -> Response:
    """Delete a meeting that never opened; the first press asks to confirm, naming any printed cards."""
    view = _meeting_view(session, meeting, settings)
    if not confirm and meeting.state == "draft":
        return render(request, "organizer/meeting.html", principal, can_manage=True, confirm_delete=True, **view)
    try:
        store.delete_meeting(session=session, actor=principal.name, meeting_id=meeting_id)
    except DomainError as error:
        session.rollback()
        return render(request, "organizer/meeting.html", principal, status=error.status, can_manage=True,
                      delete_refused=error.message(), **view)
    flash(request, f"评议会“{meeting.title}”已删除")
    return redirect("/meetings")


@router.post("/meetings/{meeting_id}/cards")
def print_cards(
    meeting_id: int,
    meeting: ManagedMeeting,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: Staff,
    count: Annotated[str, Form()] = "",
    group: Annotated[str, Form()] = "",
) -> Response:
    """Mint cards and go straight to the printable sheet: the only time their codes exist in clear."""
    try:
        body = CardsBody(count=int(count) if count.strip().isdigit() else 0, group=group or None)
    except ValidationError:
        view = _meeting_view(session, meeting, settings)
        return render(request, "organizer/meeting.html", principal, status=422, can_manage=True,
                      form={"count": count, "group": group},
                      errors={"count": f"请填写 1 到 {store.MAX_MINT} 之间的张数"}, **view)
    response = card_sheet(session=session, settings=settings, keys=request.app.state.keys, page=Page(request),
                          actor=principal.name, meeting=meeting, body=body)
    notify_changed(request, meeting_id)
    return response


@router.post("/meetings/{meeting_id}/cards/all")
async def print_all_cards(meeting_id: int, meeting: ManagedMeeting, request: Request, session: SessionDep,
                          settings: SettingsDep, principal: Staff) -> Response:
    """Every rater group's cards on one sheet: one print job, shuffled and handed out together."""
    raw = await request.form()  # one count field per group: read them all
    form = {key: str(value) for key, value in raw.items() if isinstance(value, str)}
    return await run_in_threadpool(_print_all_cards, meeting, request, session, settings, principal, form)


def _print_all_cards(meeting: Meeting, request: Request, session: Session, settings: Settings,
                     principal: Principal, form: dict[str, str]) -> Response:
    counts = {spec.key: form.get(f"count_{spec.key}", "").strip() for spec in store.group_specs(meeting)}
    wanted = {key: int(n) for key, n in counts.items() if n.isdigit() and int(n) > 0}
    try:
        body = CardsBody(groups=wanted)
    except ValidationError:
        view = _meeting_view(session, meeting, settings)
        return render(request, "organizer/meeting.html", principal, status=422, can_manage=True,
                      form={f"count_{key}": n for key, n in counts.items()},
                      errors={"all": f"请至少为一个类别填写张数（每类 1 到 {store.MAX_MINT} 张）"}, **view)
    response = card_sheet(session=session, settings=settings, keys=request.app.state.keys, page=Page(request),
                          actor=principal.name, meeting=meeting, body=body)
    notify_changed(request, meeting.id)  # type: ignore[arg-type]
    return response


@router.post("/meetings/{meeting_id}/void")
def void_tokens(
    meeting_id: int,
    _: ManagedMeeting,
    request: Request,
    session: SessionDep,
    principal: Staff,
    group: Annotated[str, Form()] = "",
) -> Response:
    count = store.void_unused_tokens(session=session, actor=principal.name, meeting_id=meeting_id,
                                     group=group or None)
    notify_changed(request, meeting_id)
    flash(request, f"已作废 {count} 张未使用的测评卡")
    return redirect(f"/meetings/{meeting_id}")
