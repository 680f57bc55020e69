"""Signing in and out, and changing one's password."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app import auth, store
from app.errors import DomainError, Forbidden
from app.messages import Problem
from app.routes.access import SESSION_CSRF, Reader, principal_of
from app.routes.console import field_errors, flash, redirect, render, signed_in
from app.routes.deps import SessionDep

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str:
    # Only a path on this site: an open redirect would let a phishing link borrow our sign-in page.
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return "/meetings"


@router.get("/")
def home() -> RedirectResponse:
    return redirect("/meetings")


@router.get("/login")
def login_page(request: Request, session: SessionDep, next: str | None = None) -> Response:
    if principal_of(request, session) is not None:
        return redirect(_safe_next(next))
    return render(request, "organizer/login.html", None, next=_safe_next(next))


@router.post("/login")
def login(
    request: Request,
    session: SessionDep,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/meetings",
) -> Response:
    # The sign-in form has its own CSRF token (from the anonymous session), against login CSRF.
    if not auth.same_token(request.session.get(SESSION_CSRF), csrf):
        raise Forbidden("csrf")
    try:
        user = store.sign_in(session=session, username=username, password=password)
    except DomainError as error:
        return render(
            request, "organizer/login.html", None, status=error.status, next=_safe_next(next),
            form={"username": username}, errors={"password": error.message("zh")},
        )
    signed_in(request, user.id)  # type: ignore[arg-type]
    return redirect(_safe_next(next))


@router.post("/logout")
def logout(request: Request, principal: Reader) -> RedirectResponse:
    request.session.clear()
    flash(request, "已退出登录")
    return redirect("/login")


@router.get("/account/password")
def password_page(request: Request, principal: Reader) -> HTMLResponse:
    return render(request, "organizer/password.html", principal)


@router.post("/account/password")
def change_password(
    request: Request,
    session: SessionDep,
    principal: Reader,
    current: Annotated[str, Form()] = "",
    new: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
) -> Response:
    if new != confirm:
        return render(request, "organizer/password.html", principal, status=422,
                      errors={"confirm": Problem("password_confirm").message()})
    try:
        store.change_password(session=session, user_id=principal.user_id or 0, current=current, new=new)
    except DomainError as error:
        return render(request, "organizer/password.html", principal, status=error.status,
                      errors=field_errors(error, "new"))
    flash(request, "密码已修改")
    return redirect("/meetings")
