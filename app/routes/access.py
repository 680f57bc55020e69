"""Who is asking: an API key (Bearer) or a signed-in organizer (session cookie), and may they.

Every organizer page and API endpoint depends on ``require(...)`` with the roles it admits. A route
about one meeting declares ``SeenMeeting`` or ``ManagedMeeting``, which load the meeting and check the
principal's category; a route with a request body calls ``seen_meeting`` / ``managed_meeting``
itself, after FastAPI has read the body (dependencies run before the body is validated, and a
malformed body is answered 422 before the category is looked at). A request authenticated
by cookie that changes something must carry the session's CSRF token (form field ``csrf`` or header
``X-CSRF-Token``); a Bearer key is not sent by browsers on their own, so it needs none.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from app import auth, store
from app.auth import Principal, Role
from app.errors import DomainError, Forbidden, Unauthorized
from app.routes.deps import SessionDep
from app.tables import Meeting

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The signed cookie holds the session's token, not the user: the session itself is a row on the
# server (store.start_session), which signing out deletes.
SESSION_TOKEN = "sid"
SESSION_CSRF = "csrf"


class SignInRequired(DomainError):
    """A page asked for by nobody: answered with a redirect to the sign-in page."""

    status = 401


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use."""
    token = request.session.get(SESSION_CSRF)
    if not token:
        token = request.session[SESSION_CSRF] = auth.new_csrf_token()
    return str(token)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def principal_of(request: Request, session: SessionDep) -> Principal | None:
    key = _bearer(request)
    if key is not None:
        row = store.authenticate_api_key(session=session, key=key)
        if row is None:
            raise Unauthorized("not_authenticated")
        if row.last_used_on != dt.date.today():
            if request.method in SAFE_METHODS:
                # A GET's session reads only (see deps.get_session); the note needs a writer.
                with request.app.state.db.session() as writing:
                    store.touch_api_key(session=writing, key_id=row.id)  # type: ignore[arg-type]
            else:
                store.touch_api_key(session=session, key_id=row.id)  # type: ignore[arg-type]
        role: Role = "admin" if "admin" in row.scopes.split() else "export"
        return Principal(name=f"api:{row.name}", role=role)
    token = request.session.get(SESSION_TOKEN) if "session" in request.scope else None
    if not isinstance(token, str):
        return None
    user = store.session_user(session=session, token=token)
    if user is None:
        request.session.clear()
        return None
    categories = None if user.role == "admin" else frozenset(user.categories.split())
    return Principal(name=f"user:{user.username}", role=user.role, categories=categories, user_id=user.id,  # type: ignore[arg-type]
                     display_name=user.display_name)


async def _check_csrf(request: Request) -> None:
    given = request.headers.get("x-csrf-token")
    if given is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get("csrf")
        given = value if isinstance(value, str) else None
    if not auth.same_token(request.session.get(SESSION_CSRF), given):
        raise Forbidden("csrf")


def require(*roles: Role) -> Callable[[Request, SessionDep], Awaitable[Principal]]:
    """A dependency admitting the given roles: 401 for nobody, 403 for a role not listed."""

    async def dependency(request: Request, session: SessionDep) -> Principal:
        # Off the event loop: the lookup may wait for SQLite's write lock, and the request that
        # holds it needs this loop to finish.
        principal = await run_in_threadpool(principal_of, request, session)
        if principal is None:
            raise Unauthorized("not_authenticated") if is_api(request) else SignInRequired("sign_in_required")
        if principal.user_id is not None and request.method not in SAFE_METHODS:
            await _check_csrf(request)
        if principal.role not in roles:
            raise Forbidden("forbidden")
        return principal

    return dependency


def ensure_manages(principal: Principal, category: str) -> None:
    if not principal.manages(category):
        raise Forbidden("forbidden_category", category=category)


def ensure_sees(principal: Principal, category: str) -> None:
    if not principal.sees(category):
        raise Forbidden("forbidden_category", category=category)


# The roles each kind of route admits; the route × role test holds the app to them.
Admin = Annotated[Principal, Depends(require("admin"))]
Staff = Annotated[Principal, Depends(require("admin", "secretary"))]
Reader = Annotated[Principal, Depends(require("admin", "secretary", "viewer"))]


def meeting_category(session: Session, meeting: Meeting) -> str:
    _, category = store.unit_of(session=session, meeting=meeting)
    return category.key


def managed_meeting(session: Session, principal: Principal, meeting_id: int) -> Meeting:
    """The meeting, if the principal may change it: 404 for none, 403 for another category."""
    meeting = store.get_meeting(session=session, meeting_id=meeting_id)
    ensure_manages(principal, meeting_category(session, meeting))
    return meeting


def seen_meeting(session: Session, principal: Principal, meeting_id: int) -> Meeting:
    """The meeting, if the principal may read it: 404 for none, 403 for another category."""
    meeting = store.get_meeting(session=session, meeting_id=meeting_id)
    ensure_sees(principal, meeting_category(session, meeting))
    return meeting


def _seen(meeting_id: int, session: SessionDep, principal: Reader) -> Meeting:
    return seen_meeting(session, principal, meeting_id)


def _managed(meeting_id: int, session: SessionDep, principal: Staff) -> Meeting:
    return managed_meeting(session, principal, meeting_id)


# The meeting of the path's {meeting_id}, for a principal who may read it / change it.
SeenMeeting = Annotated[Meeting, Depends(_seen)]
ManagedMeeting = Annotated[Meeting, Depends(_managed)]
