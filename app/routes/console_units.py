"""Units: list by category, add, edit, import from CSV or XLSX with a preview."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from app import store
from app.auth import Principal
from app.errors import DomainError, Invalid, NotFound, TooLarge
from app.imports import FIRST_YEAR, LAST_YEAR, MAX_FILE_BYTES, parse_years
from app.routes.access import Reader, Staff, ensure_manages
from app.routes.console import field_errors, flash, redirect, render
from app.routes.deps import SessionDep

router = APIRouter(include_in_schema=False)



def _managed_categories(session: Session, principal: Principal) -> list[tuple[str, str]]:
    return [(c.key, c.name) for c in store.categories(session=session) if principal.manages(c.key)]


def _ensure_manages_known(session: Session, principal: Principal, category: str) -> None:
    # An unknown category is a typing mistake (422 from the store), not a question of rights.
    if category in {c.key for c in store.categories(session=session)}:
        ensure_manages(principal, category)


@router.get("/units")
def units_page(request: Request, session: SessionDep, principal: Reader) -> HTMLResponse:
    categories = [c for c in store.categories(session=session) if principal.sees(c.key)]
    units = store.list_units(session=session)
    by_category = {c.key: [u for u in units if u.category_key == c.key] for c in categories}
    return render(
        request, "organizer/units.html", principal, categories=categories, by_category=by_category,
        can_edit=bool(_managed_categories(session, principal)),
    )


@router.get("/units/new")
def new_unit_page(request: Request, session: SessionDep, principal: Staff) -> HTMLResponse:
    return render(request, "organizer/unit_form.html", principal, unit=None,
                  categories=_managed_categories(session, principal))


@router.post("/units/new")
def create_unit(
    request: Request,
    session: SessionDep,
    principal: Staff,
    code: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    category: Annotated[str, Form()] = "",
) -> Response:
    form = {"code": code, "name": name, "category": category}
    try:
        _ensure_manages_known(session, principal, category)
        store.create_unit(session=session, actor=principal.name, code=code, name=name, category=category)
    except DomainError as error:
        field = "code" if error.problem.code in ("unit_code_taken",) else "form"
        return render(request, "organizer/unit_form.html", principal, status=error.status, unit=None,
                      categories=_managed_categories(session, principal), form=form,
                      errors=field_errors(error, field))
    flash(request, f"已添加单位 {code.strip()} {name.strip()}")
    return redirect("/units")


@router.get("/units/{code}/edit")
def edit_unit_page(code: str, request: Request, session: SessionDep, principal: Staff) -> HTMLResponse:
    unit = store.find_unit(session=session, code=code)
    if unit is None:
        raise NotFound("unit_not_found", code=code)
    ensure_manages(principal, unit.category_key)
    years = store.review_years(session=session, unit_ids=[unit.id])[unit.id]  # type: ignore[index,list-item]
    return render(request, "organizer/unit_form.html", principal, unit=unit,
                  categories=_managed_categories(session, principal),
                  form={"code": unit.code, "name": unit.name, "category": unit.category_key,
                        "years": "、".join(str(year) for year in years)})


@router.post("/units/{code}/edit")
def edit_unit(
    code: str,
    request: Request,
    session: SessionDep,
    principal: Staff,
    name: Annotated[str, Form()] = "",
    category: Annotated[str, Form()] = "",
    years: Annotated[str, Form()] = "",
) -> Response:
    unit = store.find_unit(session=session, code=code)
    if unit is None:
        raise NotFound("unit_not_found", code=code)
    ensure_manages(principal, unit.category_key)
    try:
        _ensure_manages_known(session, principal, category)
        store.update_unit(session=session, actor=principal.name, code=code, name=name, category=category,
                          reviewed_years=_years(years))
    except DomainError as error:
        return render(request, "organizer/unit_form.html", principal, status=error.status, unit=unit,
                      categories=_managed_categories(session, principal),
                      form={"code": code, "name": name, "category": category, "years": years},
                      errors=field_errors(error, "form"))
    flash(request, f"已保存单位 {code}")
    return redirect("/units")


def _years(text: str) -> list[int]:
    years = parse_years(text)
    if years is None:
        raise Invalid("request_invalid", error=f"往年测评年度应为 {FIRST_YEAR}–{LAST_YEAR} 的年份，用顿号分隔")
    return sorted(years)


@router.post("/units/{code}/delete")
def delete_unit(code: str, request: Request, session: SessionDep, principal: Staff) -> Response:
    unit = store.find_unit(session=session, code=code)
    if unit is None:
        raise NotFound("unit_not_found", code=code)
    ensure_manages(principal, unit.category_key)
    store.delete_unit(session=session, actor=principal.name, code=code)
    flash(request, f"已删除单位 {unit.code} {unit.name}")
    return redirect("/units")


@router.get("/units/import")
def import_page(request: Request, principal: Staff) -> HTMLResponse:
    return render(request, "organizer/unit_import.html", principal, rows=None, payload="")


@router.post("/units/import")
def import_units(
    request: Request,
    session: SessionDep,
    principal: Staff,
    file: Annotated[UploadFile | None, File()] = None,
    payload: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
) -> Response:
    """First post: the file, answered with a preview. Second post: the same bytes, confirmed."""
    allowed = [key for key, _ in _managed_categories(session, principal)]
    try:
        data = _import_bytes(file, payload)
        if confirm:
            outcome = store.import_units(session=session, actor=principal.name, data=data, categories=allowed)
            flash(request, f"已导入：新增 {len(outcome.created)} 个单位，更新 {len(outcome.updated)} 个，"
                           f"{outcome.unchanged} 个不变")
            return redirect("/units")
        rows = store.preview_import(session=session, data=data, categories=allowed)
    except DomainError as error:
        problems = [p.message("zh") for p in (error.problems or [error.problem])]
        return render(request, "organizer/unit_import.html", principal, status=error.status, rows=None,
                      payload="", problems=problems)
    names = dict(_managed_categories(session, principal))
    counts = {action: sum(1 for row in rows if row.action == action) for action in ("create", "update", "same")}
    return render(request, "organizer/unit_import.html", principal, rows=rows, names=names, counts=counts,
                  payload=base64.b64encode(data).decode("ascii"))


def _import_bytes(file: UploadFile | None, payload: str) -> bytes:
    if payload:
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise Invalid("import_payload_damaged") from None
    if file is None or not file.filename:
        raise Invalid("import_no_file")
    data = file.file.read(MAX_FILE_BYTES + 1)  # no further: the rest is not a unit list
    if len(data) > MAX_FILE_BYTES:
        raise TooLarge("import_too_large", limit=MAX_FILE_BYTES)
    return data
