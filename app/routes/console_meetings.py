"""Meetings: the list by date and category, creating one, its lifecycle, and its ballot codes."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from app import store
from app.auth import Principal
from app.errors import DomainError, Problem, field_reason, invalid_with
from app.messages import MESSAGES
from app.models import GroupIn, Meeting, MeetingCreate, MintBody
from app.routes.access import Reader, Staff, ensure_manages
from app.routes.api import managed_meeting, seen_meeting
from app.routes.console import field_errors, flash, redirect, render
from app.routes.deps import SessionDep, SettingsDep, notify_changed
from app.store import DEFAULT_GROUPS

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
    form = {"unit_code": unit, "year": today.year, "date": today.isoformat(), "mode": "cards", "attendance": 35,
            "trim": 1, "component_weight": "0.4", "flagged_rule": "count", "template": "default"}
    for index, (key, name) in enumerate(DEFAULT_GROUPS):
        form[f"group_key_{index}"], form[f"group_name_{index}"] = key, name
    return render(request, "organizer/meeting_form.html", principal, form=form,
                  **_meeting_form_context(session, principal))


GROUP_ROWS = 6


@router.post("/meetings/new")
async def create_meeting(request: Request, session: SessionDep, principal: Staff) -> Response:
    raw = await request.form()  # the group rows are numbered fields: read them all
    form = {key: str(value) for key, value in raw.items() if isinstance(value, str)}
    # The database work off the event loop: it may wait for SQLite's write lock.
    return await run_in_threadpool(_create_meeting, request, session, principal, form)


def _create_meeting(request: Request, session: Session, principal: Principal, form: dict[str, str]) -> Response:
    try:
        body = _meeting_body(form)
        unit = store.find_unit(session=session, code=body.unit_code)
        if unit is not None:
            ensure_manages(principal, unit.category_key)
        meeting = store.create_meeting(session=session, actor=principal.name, body=body)
    except DomainError as error:
        return render(request, "organizer/meeting_form.html", principal, status=error.status, form=form,
                      errors=field_errors(error, "form"), **_meeting_form_context(session, principal))
    flash(request, f"已创建评议会“{meeting.title}”。下一步：发放测评卡，然后开启评议会。")
    return redirect(f"/meetings/{meeting.id}")


def _meeting_body(form: dict[str, str]) -> MeetingCreate:
    template_id, _, version = form.get("template", "default").partition(":")
    groups = []
    for index in range(GROUP_ROWS):
        key, name = form.get(f"group_key_{index}", "").strip(), form.get(f"group_name_{index}", "").strip()
        if key or name:
            groups.append({"key": key, "name": name, "weight": form.get(f"group_weight_{index}", "").strip() or None})
    try:
        return MeetingCreate(
            unit_code=form.get("unit_code", ""),
            year=form.get("year") or 0,
            date=form.get("date") or None,
            title=form.get("title", ""),
            mode=form.get("mode", "cards"),
            attendance=form.get("attendance") or 0,
            template_id=template_id or "default",
            template_version=int(version) if version.isdigit() else None,
            groups=[GroupIn(**group) for group in groups] or None,
            trim=form.get("trim") or 0,
            component_weight=form.get("component_weight", "0.4"),
            flagged_rule=form.get("flagged_rule", "count"),
        )
    except ValidationError as exc:
        # The form's fields by their names on the page (app.messages.TERMS), not their place in a model.
        raise invalid_with([_form_problem(err) for err in exc.errors()]) from None


def _form_problem(err: Any) -> Problem:
    context = dict(err.get("ctx") or {})
    path = str(context.pop("path", ""))
    field = path.rsplit(".", 1)[-1] if path else str(err["loc"][-1]) if err.get("loc") else "form"
    if err.get("type") in MESSAGES:
        return Problem(err["type"], {**context, "field": field})
    return Problem("field_reason", {"field": field, "reason": field_reason(err)})


def _meeting_view(session: Session, meeting: Meeting, k: int) -> dict[str, Any]:
    unit, category = store.unit_of(session=session, meeting=meeting)
    counts = store.token_counts(session=session, meeting_id=meeting.id)  # type: ignore[arg-type]
    groups: list[dict[str, Any]] = []
    for spec in store.group_specs(meeting):
        entry = counts.get(spec.key, {"issued": 0, "spent": 0, "void": 0})
        groups.append({"spec": spec, **entry, "short": entry["issued"] < k})
    ungrouped = counts.get(None)
    _, tally, issued = store.tally(session=session, meeting_id=meeting.id)  # type: ignore[arg-type]
    return {"meeting": meeting, "unit": unit, "category": category, "groups": groups, "ungrouped": ungrouped,
            "weighted": any(g["spec"].weight for g in groups),
            "tally": tally, "issued": issued, "k": k,
            "audit": store.list_audit(session=session, meeting_id=meeting.id, limit=20)}


@router.get("/meetings/{meeting_id}")
def meeting_page(
    meeting_id: int, request: Request, session: SessionDep, settings: SettingsDep, principal: Reader
) -> HTMLResponse:
    meeting = seen_meeting(session, principal, meeting_id)
    view = _meeting_view(session, meeting, settings.k_anonymity)
    return render(request, "organizer/meeting.html", principal, can_manage=principal.manages(view["category"].key),
                  **view)


@router.post("/meetings/{meeting_id}/open")
def open_meeting(
    meeting_id: int,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: Staff,
    confirm: Annotated[str, Form()] = "",
) -> Response:
    meeting = managed_meeting(session, principal, meeting_id)
    view = _meeting_view(session, meeting, settings.k_anonymity)
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
    meeting_id: int, request: Request, session: SessionDep, settings: SettingsDep, principal: Staff
) -> Response:
    managed_meeting(session, principal, meeting_id)
    result = store.close_meeting(session=session, actor=principal.name, meeting_id=meeting_id,
                                 k=settings.k_anonymity)
    notify_changed(request, meeting_id)
    flash(request, f"评议会已结束，结果已冻结（第 {result.version} 版，{result.ballot_count} 张票）")
    return redirect(f"/meetings/{meeting_id}")


@router.post("/meetings/{meeting_id}/reopen")
def reopen_meeting(
    meeting_id: int,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: Staff,
    reason: Annotated[str, Form()] = "",
) -> Response:
    meeting = managed_meeting(session, principal, meeting_id)
    try:
        store.reopen_meeting(session=session, actor=principal.name, meeting_id=meeting_id, reason=reason)
    except DomainError as error:
        view = _meeting_view(session, meeting, settings.k_anonymity)
        return render(request, "organizer/meeting.html", principal, status=error.status, can_manage=True,
                      form={"reason": reason}, errors=field_errors(error, "reason"), **view)
    notify_changed(request, meeting_id)
    flash(request, "评议会已重新开启，理由已记入操作日志")
    return redirect(f"/meetings/{meeting_id}")


@router.post("/meetings/{meeting_id}/cards")
def print_cards(
    meeting_id: int,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: Staff,
    count: Annotated[str, Form()] = "",
    group: Annotated[str, Form()] = "",
) -> Response:
    """Mint cards and go straight to the printable sheet: the only time their codes exist in clear."""
    from app.routes.cards import mint_cards
    from app.routes.pages import Page

    meeting = managed_meeting(session, principal, meeting_id)
    try:
        body = MintBody(count=int(count) if count.strip().isdigit() else 0, group=group or None)
    except ValidationError:
        view = _meeting_view(session, meeting, settings.k_anonymity)
        return render(request, "organizer/meeting.html", principal, status=422, can_manage=True,
                      form={"count": count, "group": group},
                      errors={"count": f"请填写 1 到 {store.MAX_MINT} 之间的张数"}, **view)
    response = mint_cards(meeting_id, body, session, settings, principal, Page(request))
    notify_changed(request, meeting_id)
    return response


@router.post("/meetings/{meeting_id}/void")
def void_tokens(
    meeting_id: int,
    request: Request,
    session: SessionDep,
    principal: Staff,
    group: Annotated[str, Form()] = "",
) -> Response:
    managed_meeting(session, principal, meeting_id)
    count = store.void_unused_tokens(session=session, actor=principal.name, meeting_id=meeting_id,
                                     group=group or None)
    notify_changed(request, meeting_id)
    flash(request, f"已作废 {count} 张未使用的测评卡")
    return redirect(f"/meetings/{meeting_id}")
