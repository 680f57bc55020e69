"""What the service answers when something it did not expect goes wrong.

An unexpected error gets one log line — its type, the route's pattern and a short random id — and
an answer that shows the same id, so that an organizer can quote it and whoever reads the log
finds the line. No traceback: its frames hold the request's values, which can be a ballot code.
The error is answered here rather than by Starlette's last-resort handler, which re-raises it to
the server: uvicorn then logs the traceback and closes the keep-alive connection.
"""

from __future__ import annotations

import logging
import secrets

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.disk import is_disk_full
from app.errors import DomainError, Problem
from app.routes.console import message_page
from app.routes.deps import error_response, language
from app.routes.pages import Page

# A rater's pages answer in the phone's look and language (app.main.is_phone_page).
PHONE_PAGES = ("/b/", "/c", "/s/", "/thanks")

log = logging.getLogger("onsite_ballot")

# 8 hex digits: short enough to read out over the phone, and 4 billion of them.
ERROR_ID_BYTES = 4


def new_error_id() -> str:
    return secrets.token_hex(ERROR_ID_BYTES).upper()


def route_pattern(scope: Scope) -> str:
    """The route's pattern (/b/{code}), never the path itself, which may carry a code."""
    return getattr(scope.get("route"), "path", "?")


class CatchUnexpected:
    """The outermost middleware of ours: answers any exception the app let through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            request = Request(scope, receive)
            if is_disk_full(exc):
                # Not a fault of the code: said as it is, to the organizer and to /readyz.
                request.app.state.disk.failed()
                log.error("disk full on %s %s", scope["method"], route_pattern(scope))
                if not started:
                    await disk_full_response(request)(scope, receive, send)
                return
            error_id = new_error_id()
            log.error("unexpected %s on %s %s (error %s)", type(exc).__name__, scope["method"],
                      route_pattern(scope), error_id)
            if started:
                # Half an answer is out: nothing can be added to it. Returning without finishing it
                # makes uvicorn close this one connection, without a traceback.
                return
            response = unexpected_response(request, error_id)
            await response(scope, receive, send)


def disk_full_response(request: Request) -> Response:
    problem = Problem("disk_full")
    path = request.url.path
    if path.startswith(("/api/", "/healthz", "/readyz")):
        return error_response(request, problem, 503)
    if path.startswith(PHONE_PAGES):
        page = Page(request)
        return page.message("error_title", "disk_full_body", 503, link=(page.url("/c"), page.t("type_code")))
    error = DomainError(problem.code)
    error.status = 503
    return message_page(request, error)


def unexpected_response(request: Request, error_id: str) -> Response:
    problem = Problem("internal_logged", {"error_id": error_id})
    path = request.url.path
    if path.startswith(("/api/", "/healthz", "/readyz")):
        lang = language(request)
        # "internal", as every 500 has always said; the id is in the detail and a field of its own.
        body = {"code": "internal", "detail": problem.message(lang), "problems": [], "error_id": error_id}
        return JSONResponse(body, status_code=500)
    if path.startswith(PHONE_PAGES):
        page = Page(request)
        return page.message("error_title", "error_body", 500, link=(page.url("/c"), page.t("type_code")),
                            error_id=error_id)
    error = DomainError(problem.code, **problem.params)
    error.status = 500
    return message_page(request, error, error_id=error_id)
