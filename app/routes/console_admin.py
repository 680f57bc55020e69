"""Ballot templates, organizer accounts, API keys and the audit log."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from app import store
from app.auth import USER_ROLES
from app.errors import DomainError, Invalid
from app.labels import actor_label
from app.routes.access import Admin, Reader
from app.routes.console import audit_rows, field_errors, flash, redirect, render
from app.routes.deps import SessionDep
from app.routes.views import visible_overview
from app.templates import parse_template

router = APIRouter(include_in_schema=False)

MAX_TEMPLATE_BYTES = 60 * 1024


# ---- ballot templates ---------------------------------------------------------------------------


@router.get("/ballot-templates")
def templates_page(request: Request, session: SessionDep, principal: Reader) -> HTMLResponse:
    return render(request, "organizer/templates.html", principal, templates=store.list_templates(session=session))


@router.get("/ballot-templates/{template_id}")
def template_page(
    template_id: str, request: Request, session: SessionDep, principal: Reader, version: int | None = None
) -> HTMLResponse:
    template = store.get_template(session=session, template_id=template_id, version=version)
    return render(request, "organizer/template.html", principal, template=template)


@router.get("/ballot-templates-new")
def new_template_page(request: Request, session: SessionDep, principal: Admin, base: str = "default") -> HTMLResponse:
    template = store.get_template(session=session, template_id=base)
    text = json.dumps(json.loads(template.to_json()), ensure_ascii=False, indent=2)
    return render(request, "organizer/template_form.html", principal, form={"body": text})


@router.post("/ballot-templates-new")
def create_template(
    request: Request,
    session: SessionDep,
    principal: Admin,
    body: Annotated[str, Form()] = "",
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    text = body
    if file is not None and file.filename:
        data = file.file.read(MAX_TEMPLATE_BYTES + 1)
        text = data.decode("utf-8-sig", errors="replace")
    try:
        if len(text.encode("utf-8")) > MAX_TEMPLATE_BYTES:
            raise Invalid("request_too_large", limit=MAX_TEMPLATE_BYTES)
        template = store.save_template(session=session, actor=principal.name, template=parse_template(text))
    except DomainError as error:
        return render(request, "organizer/template_form.html", principal, status=error.status,
                      form={"body": text}, errors=field_errors(error, "body"))
    flash(request, f"已保存模板 {template.id} 第 {template.version} 版")
    return redirect(f"/ballot-templates/{template.id}?version={template.version}")


# ---- accounts ---------------------------------------------------------------------------------


@router.get("/accounts")
def accounts_page(request: Request, session: SessionDep, principal: Admin) -> HTMLResponse:
    return render(request, "organizer/accounts.html", principal, users=store.list_users(session=session),
                  categories=store.categories(session=session), roles=USER_ROLES)


@router.post("/accounts")
def create_account(
    request: Request,
    session: SessionDep,
    principal: Admin,
    username: Annotated[str, Form()] = "",
    display_name: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "",
    categories: Annotated[list[str] | None, Form()] = None,
) -> Response:
    categories = categories or []
    fields = {"username": username, "display_name": display_name, "password": password, "role": role}
    try:
        user = store.create_user(
            session=session, actor=principal.name, username=fields.get("username", ""),
            display_name=fields.get("display_name", ""), password=fields.get("password", ""),
            role=fields.get("role", ""), categories=categories,
        )
    except DomainError as error:
        fields.pop("password", None)
        return render(request, "organizer/accounts.html", principal, status=error.status,
                      users=store.list_users(session=session), categories=store.categories(session=session),
                      roles=USER_ROLES, form={**fields, "categories": categories},
                      errors=field_errors(error, "account"))
    flash(request, f"已创建账号 {user.username}")
    return redirect("/accounts")


@router.post("/accounts/{user_id}")
def update_account(
    user_id: int,
    request: Request,
    session: SessionDep,
    principal: Admin,
    role: Annotated[str, Form()] = "",
    categories: Annotated[list[str] | None, Form()] = None,
    active: Annotated[str, Form()] = "",
) -> Response:
    store.update_user(session=session, actor=principal.name, user_id=user_id, role=role,
                      categories=categories or [], active=active == "on")
    flash(request, "账号已更新")
    return redirect("/accounts")


# ---- API keys ---------------------------------------------------------------------------------


@router.get("/api-keys")
def api_keys_page(request: Request, session: SessionDep, principal: Admin) -> HTMLResponse:
    return render(request, "organizer/api_keys.html", principal, keys=store.list_api_keys(session=session))


@router.post("/api-keys")
def create_api_key(
    request: Request,
    session: SessionDep,
    principal: Admin,
    name: Annotated[str, Form()] = "",
    scopes: Annotated[str, Form()] = "export",
) -> Response:
    try:
        key = store.create_api_key(session=session, name=name, scopes=scopes, actor=principal.name)
    except DomainError as error:
        return render(request, "organizer/api_keys.html", principal, status=error.status,
                      keys=store.list_api_keys(session=session), form={"name": name, "scopes": scopes},
                      errors=field_errors(error, "name"))
    # Shown on this page once; only its hash is stored.
    return render(request, "organizer/api_keys.html", principal, status=201,
                  keys=store.list_api_keys(session=session), new_key=key, new_name=name)


@router.post("/api-keys/{key_id}/revoke")
def revoke_api_key(key_id: int, request: Request, session: SessionDep, principal: Admin) -> Response:
    key = store.revoke_api_key(session=session, actor=principal.name, key_id=key_id)
    flash(request, f"已吊销 API 密钥 {key.name}")
    return redirect("/api-keys")


# ---- audit log --------------------------------------------------------------------------------


@router.get("/audit")
def audit_page(
    request: Request, session: SessionDep, principal: Admin, meeting: str = "", actor: str = ""
) -> HTMLResponse:
    meeting_id = int(meeting) if meeting.strip().isdigit() else None
    events = store.list_audit(session=session, meeting_id=meeting_id, actor=actor or None)
    meetings = store.list_meetings(session=session)
    groups = {spec.key: spec.name for m in meetings for spec in store.group_specs(m)}
    people = {user.username: user.display_name for user in store.list_users(session=session)}
    actors = [(a, actor_label(a, people)) for a in store.audit_actors(session=session)]
    return render(request, "organizer/audit.html", principal, events=audit_rows(session, events, groups),
                  actors=actors, meetings=meetings, meeting=meeting_id, actor=actor)


# ---- year overview ----------------------------------------------------------------------------


@router.get("/overview")
def overview_page(
    request: Request, session: SessionDep, principal: Reader, year: int | None = None, category: str = ""
) -> HTMLResponse:
    """Each unit's on-site reviews over three years; units without one in three years stand out."""
    year = year or dt.date.today().year
    visible = [c for c in store.categories(session=session) if principal.sees(c.key)]
    chosen = category if category in {c.key for c in visible} else ""
    page = visible_overview(session, principal, year, chosen)
    query = f"year={year}" + (f"&amp;category={chosen}" if chosen else "")
    return render(request, "organizer/overview.html", principal, page=page, rows=page.units, categories=visible,
                  year=year, category=chosen, overdue=[u for u in page.units if u.overdue], query=query)
