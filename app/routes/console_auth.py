"""Signing in and out, and changing one's password."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app import auth, store
from app.errors import DomainError, Forbidden
from app.messages import Problem
from app.routes.access import SESSION_CSRF, SESSION_TOKEN, Reader, principal_of
from app.routes.console import field_errors, flash, redirect, render, signed_in
from app.routes.deps import SessionDep

router = APIRouter(include_in_schema=False)

# The browser's own token (store.sign_in: a browser that has signed in before is not locked out by
# strangers' wrong passwords). Sent to the sign-in page only, and lasting long enough to matter:
# a deputy secretary's laptop signs in a few times a year.
BROWSER_COOKIE = "ob_browser"
BROWSER_COOKIE_SECONDS = 400 * 24 * 3600


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
    browser = request.cookies.get(BROWSER_COOKIE) or auth.new_token()
    try:
        user = store.sign_in(session=session, username=username, password=password, browser=browser)
    except DomainError as error:
        return render(
            request, "organizer/login.html", None, status=error.status, next=_safe_next(next),
            form={"username": username}, errors={"password": error.message("zh")},
        )
    signed_in(request, store.start_session(session=session, user_id=user.id))  # type: ignore[arg-type]
    return remember_browser(request, redirect(_safe_next(next)), browser)


def remember_browser(request: Request, response: RedirectResponse, browser: str) -> RedirectResponse:
    response.set_cookie(
        BROWSER_COOKIE, browser, max_age=BROWSER_COOKIE_SECONDS, path="/login", httponly=True, samesite="lax",
        secure=request.app.state.settings.base_url.startswith("https://"),
    )
    return response


@router.post("/logout")
def logout(request: Request, session: SessionDep, principal: Reader) -> RedirectResponse:
    token = request.session.get(SESSION_TOKEN)
    if isinstance(token, str):
        store.end_session(session=session, token=token)  # a copy of the cookie stops working too
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
    browser = auth.new_token()  # this browser stays known; every other one is forgotten
    try:
        store.change_password(
            session=session, user_id=principal.user_id or 0, current=current, new=new,
            keep_session=str(request.session.get(SESSION_TOKEN, "")), browser=browser,
        )
    except DomainError as error:
        return render(request, "organizer/password.html", principal, status=error.status,
                      errors=field_errors(error, "new"))
    flash(request, "密码已修改")
    return remember_browser(request, redirect("/meetings"), browser)
