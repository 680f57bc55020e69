"""The application factory: settings in, a FastAPI app out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from fastapi.telemetry import TelemetryConfig
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app import text
from app.auth import SESSION_LIFETIME
from app.db import Database, create_database
from app.errors import DomainError, Problem, TooManyGuesses, validation_problem
from app.guard import GuessGuard
from app.live import Hub
from app.routes import (
    api,
    api_admin,
    ballot,
    cards,
    console_admin,
    console_auth,
    console_live,
    console_meetings,
    console_units,
    health,
    results,
)
from app.routes.access import SignInRequired
from app.routes.console import message_page, sign_in_redirect
from app.routes.deps import error_response
from app.routes.docs import mount_docs
from app.routes.pages import STATIC_DIR, Page
from app.settings import Settings
from app.webhooks import WebhookWorker
from app.writer import BallotWriter

log = logging.getLogger("onsite_ballot")


NO_TELEMETRY: TelemetryConfig = {
    "tracing": False, "metrics": False, "logs": False, "operation_spans": False, "auto_configure": False,
}
# A signed-in organizer stays signed in for a working day, not longer (and the server agrees: auth).
SESSION_SECONDS = int(SESSION_LIFETIME.total_seconds())
SESSION_COOKIE = "ob_session"
UPLOAD_LIMITS = {"/units/import": 3 * 1024 * 1024, "/api/v1/units/import": 3 * 1024 * 1024}


class BodyLimit:
    """Refuse a request body over the limit, declared or streamed, before any handler reads it; and
    one that trickles in slower than ``seconds`` (a slow-loris client holds a connection, not the app)."""

    def __init__(
        self, app: ASGIApp, limit: int, overrides: dict[str, int] | None = None, seconds: float = 15.0
    ) -> None:
        self.app = app
        self.default = limit
        self.overrides = overrides or {}
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.overrides.get(scope["path"], self.default)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, receive, send, Problem("request_too_large", {"limit": limit}), 413)
            return
        seen = 0
        complete = False
        refusal: tuple[Problem, int] | None = None
        deadline = asyncio.get_running_loop().time() + self.seconds

        async def limited() -> Message:
            nonlocal seen, complete, refusal
            if complete:  # after the body, receive() waits for a disconnect: no deadline there
                return await receive()
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                message = await asyncio.wait_for(receive(), timeout=max(remaining, 0.001))
            except TimeoutError:
                refusal = (Problem("request_too_slow", {"seconds": int(self.seconds)}), 408)
                raise _Refused from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if seen > limit:
                    refusal = (Problem("request_too_large", {"limit": limit}), 413)
                    raise _Refused
            return message

        async def guarded(message: Message) -> None:
            # The framework turns a failed body read into its own 400; the refusal below replaces it.
            if refusal is None:
                await send(message)

        with suppress(_Refused):
            await self.app(scope, limited, guarded)
        if refusal is not None:
            await self._refuse(scope, receive, send, *refusal)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, problem: Problem, status: int) -> None:
        response = error_response(Request(scope, receive), problem, status)
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


class _Refused(Exception):
    pass


class RefuseControlInAddress:
    """422 for a control character in the path or the query string (app.text), before any route:
    a NUL handed on to PostgreSQL in a lookup fails the whole query (a 500 once)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and text.address_has_control(scope["path"], scope.get("query_string", b"")):
            response = error_response(Request(scope, receive), Problem("request_control"), 422)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


# Phone paths never carry an organizer's session: the hot path skips the cookie's signature
# check, and nothing on a rater's side can be tied to a signed-in browser.
PHONE_PREFIXES = ("/api/v1/ballots", "/b/", "/c", "/s/", "/thanks", "/static/", "/healthz", "/readyz")


class SessionsExceptPhones:
    def __init__(self, app: ASGIApp, /, **options: Any) -> None:
        self.plain = app
        self.with_sessions = SessionMiddleware(app, **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PHONE_PREFIXES):
            await self.plain(scope, receive, send)
        else:
            await self.with_sessions(scope, receive, send)


def create_app(settings: Settings, database: Database | None = None) -> FastAPI:
    db = database or create_database(settings.resolved_database_url)

    hub = Hub(db)
    writer = BallotWriter(db, k=settings.k_anonymity, hub=hub)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await hub.start()
        writer.start()
        webhooks = WebhookWorker(db, settings)
        if settings.webhook_worker:
            webhooks.start()
        app.state.webhooks = webhooks
        try:
            yield
        finally:
            await webhooks.stop()
            await writer.stop()
            await hub.stop()
            if database is None:
                db.dispose()

    app = FastAPI(
        title="onsite-ballot",
        version="0.1.0",
        summary="匿名现场测评 · anonymous on-site ballots for party-building review meetings",
        lifespan=lifespan,
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # served below from our own files: FastAPI's default loads from a CDN
        redoc_url=None,
        # No OpenTelemetry: spans would carry ballot URLs and request bodies, and the environment
        # (FASTAPI_OTEL_AUTO_CONFIGURE) could send them to another host. Nothing leaves this server.
        telemetry=NO_TELEMETRY,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.hub = hub
    app.state.writer = writer
    app.state.guard = GuessGuard.for_workers(settings.workers)

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> Response:
        if isinstance(exc, TooManyGuesses):
            seconds = exc.problem.params.get("seconds", 1)
            response: Response
            if is_phone_page(request):
                page = Page(request)
                response = page.message("guess_title", "guess_body", 429,
                                        link=(page.url("/c"), page.t("type_code")), seconds=seconds)
            else:
                response = error_response(request, exc.problem, exc.status)
            response.headers["Retry-After"] = str(seconds)
            return response
        if wants_page(request):
            if isinstance(exc, SignInRequired):
                return sign_in_redirect(request)
            return message_page(request, exc)
        return error_response(request, exc.problem, exc.status, exc.problems)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        problems = [validation_problem(err) for err in exc.errors()]
        return error_response(request, problems[0], 422, problems)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        # Starlette's own words (exc.detail) are English: ours say the same in the reader's language.
        code = HTTP_PROBLEMS.get(exc.status_code, "request_unreadable")
        problem = Problem(code)
        if exc.status_code == 404 and is_phone_page(request):
            page = Page(request)
            response: Response = page.message("page_missing_title", "page_missing_body", 404,
                                               link=(page.url("/c"), page.t("type_code")))
        elif wants_page(request):
            error = DomainError(code, **problem.params)
            error.status = exc.status_code
            response = message_page(request, error)
        else:
            response = error_response(request, problem, exc.status_code)
        # Keep what the protocol asks for, such as the Allow header of a 405.
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(OverflowError)
    async def _overflow(request: Request, exc: OverflowError) -> Response:
        # A number too large for the database's integers (an id or a year typed wrong, or a fuzzer).
        problem = Problem("request_invalid", {"error": Problem("number_out_of_range")})
        return error_response(request, problem, 422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # Type only: a message could quote a token or a ballot.
        log.error(
            "unexpected %s on %s %s",
            type(exc).__name__,
            request.method,
            getattr(request.scope.get("route"), "path", "?"),
        )
        if wants_page(request):
            error = DomainError("internal")
            error.status = 500
            return message_page(request, error)
        return error_response(request, Problem("internal"), 500)

    app.openapi = lambda: documented_errors(app)  # type: ignore[method-assign]
    # The phones' hot route straight on the app, first: no included router to walk before it.
    for route in api.ballots_router.routes:
        app.router.routes.append(route)
    app.include_router(api.router)
    app.include_router(cards.router)
    app.include_router(ballot.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(health.router)
    mount_docs(app)
    for router in (console_auth.router, console_meetings.router, console_units.router, console_admin.router):
        app.include_router(router)
    app.include_router(api_admin.router)
    app.include_router(console_live.router)
    app.include_router(console_live.api_router)
    app.include_router(results.router)
    # Larger bodies only where files are uploaded; a ballot never needs more than the default.
    app.add_middleware(
        BodyLimit, limit=settings.max_body_bytes, overrides=UPLOAD_LIMITS, seconds=settings.max_body_seconds
    )
    app.add_middleware(
        SessionsExceptPhones,
        secret_key=settings.secret(),
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_SECONDS,
        same_site="lax",
        https_only=settings.base_url.startswith("https://"),
    )
    if settings.trusted_proxy_list:
        # The client's address as the configured proxy forwards it (uvicorn's middleware; `serve`
        # turns uvicorn's own handling off, which trusts any local client by default).
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxy_list)
    app.add_middleware(RefuseControlInAddress)  # outermost: nothing else reads such an address
    return app


HTTP_PROBLEMS = {404: "not_found", 405: "method_not_allowed"}

API_ERRORS = {
    400: "the body cannot be read", 401: "no valid API key or session", 403: "not allowed for this role",
    404: "not found", 409: "not in a state that allows it", 413: "the body is too large",
    422: "the input breaks a rule, named in the answer", 429: "too many wrong ballot codes from here",
}


def documented_errors(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, with every 422 described as what it is: our ErrorBody, not FastAPI's list."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
        error_body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        for url, path in schema.get("paths", {}).items():
            for operation in path.values():
                answers = operation.setdefault("responses", {})
                if "422" in answers:
                    answers["422"]["content"] = error_body
                # Any API call may meet these answers of the error handlers (app.errors): say so.
                for status, description in API_ERRORS.items():
                    if url.startswith("/api/") and str(status) not in answers:
                        answers[str(status)] = {"description": description, "content": error_body}
        components = schema.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema


def is_phone_page(request: Request) -> bool:
    """A rater's page: answered in the phone's own look and language, not the console's."""
    return request.url.path.startswith(("/b/", "/c", "/s/", "/thanks"))


def wants_page(request: Request) -> bool:
    """Console pages answer errors with a page; the API, with JSON."""
    return not request.url.path.startswith(("/api/", "/healthz", "/readyz"))


def app_from_env() -> FastAPI:
    """For uvicorn --factory: every worker process builds its app from the environment."""
    from app.redact import configure_logging
    from app.settings import get_settings

    configure_logging()
    return create_app(get_settings())
