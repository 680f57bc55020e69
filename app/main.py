"""The application factory: settings in, a FastAPI app out."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import itsdangerous
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.telemetry import TelemetryConfig
from itsdangerous.exc import SignatureExpired
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app import backup, text
from app.auth import SESSION_LIFETIME
from app.backup import sqlite_path
from app.db import Database, create_database
from app.disk import DiskState
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
    console_exports,
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
from app.routes.failures import CatchUnexpected
from app.routes.openapi import documented, operation_id
from app.routes.pages import STATIC_DIR, Page, VersionedStaticFiles
from app.sealing import ServerKeys
from app.settings import Settings
from app.watchdog import Watchdog
from app.webhooks import WebhookWorker
from app.writer import BallotWriter, keep_scrubbing

log = logging.getLogger("onsite_ballot")


NO_TELEMETRY: TelemetryConfig = {
    "tracing": False, "metrics": False, "logs": False, "operation_spans": False, "auto_configure": False,
}
# A signed-in organizer stays signed in for a working day, not longer (and the server agrees: auth).
SESSION_SECONDS = int(SESSION_LIFETIME.total_seconds())
SESSION_COOKIE = "ob_session"
# A load balancer's health check waits a few seconds at most: answer before it gives up.
READY_PROBE_SECONDS = 3.0
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


# Below this a response is sent as it is: gzip's header and checksum would outweigh the saving.
COMPRESS_MIN_BYTES = 500
# zlib level 6: within a few per cent of level 9 on our pages, at about a third of the CPU.
COMPRESS_LEVEL = 6
# The submit path answers in ~150 bytes and is the one path 200 phones take at once: not compressed.
UNCOMPRESSED_PATHS = frozenset({"/api/v1/ballots"})


class CompressExceptSubmits:
    """gzip for pages, stylesheets, scripts and API reads (a phone on a weak signal waits for every
    byte), but not for the ballot submit, whose answer is small and whose time is the service's."""

    def __init__(self, app: ASGIApp) -> None:
        self.plain = app
        self.compressed = GZipMiddleware(app, minimum_size=COMPRESS_MIN_BYTES, compresslevel=COMPRESS_LEVEL)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in UNCOMPRESSED_PATHS:
            await self.compressed(scope, receive, send)
        else:
            await self.plain(scope, receive, send)


class SessionsExceptPhones:
    def __init__(self, app: ASGIApp, /, **options: Any) -> None:
        self.plain = app
        self.with_sessions = SessionMiddleware(app, **options)
        self.with_sessions.signer = ClockTolerantSigner(str(options["secret_key"]), tolerance=options["max_age"])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PHONE_PREFIXES):
            await self.plain(scope, receive, send)
        else:
            await self.with_sessions(scope, receive, send)


class ClockTolerantSigner(itsdangerous.TimestampSigner):
    """The session cookie's signer, for a clock that can be put back.

    itsdangerous refuses a signature made "in the future": when the host's clock is put back (an NTP
    step, a wrong manual setting), every organizer would be signed out at once. Such a signature is
    accepted here if it is no further ahead than ``tolerance``; the age limit still holds, counted on
    the clock as it now runs. Only a holder of the secret can make a signature of any time.
    """

    def __init__(self, secret_key: str, *, tolerance: int) -> None:
        super().__init__(secret_key)
        self.tolerance = tolerance

    def unsign(
        self, signed_value: str | bytes, max_age: int | None = None, return_timestamp: bool = False
    ) -> Any:
        value, signed_at = super().unsign(signed_value, return_timestamp=True)
        age = self.get_timestamp() - int(signed_at.timestamp())
        if (max_age is not None and age > max_age) or age < -self.tolerance:
            raise SignatureExpired(f"signature age {age} s", payload=value, date_signed=signed_at)
        return (value, signed_at) if return_timestamp else value


def create_app(settings: Settings, database: Database | None = None) -> FastAPI:
    db = database or create_database(settings.resolved_database_url)

    hub = Hub(db)
    # Derived once from the secret: the ledger's code key and the root of every meeting's sealing key.
    keys = ServerKeys.from_secret(settings.secret())
    disk = DiskState(sqlite_path(db.url).parent if db.is_sqlite else None)
    writer = BallotWriter(
        db, k=settings.k_anonymity, keys=keys, hub=hub, mix_interval=settings.mix_interval_seconds,
        batch_seconds=settings.writer_batch_seconds, disk=disk,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Each serving process holds the data folder's lock: `restore` is refused while it runs.
        with backup.serving(settings.data_dir):
            async with _running(app):
                yield

    @asynccontextmanager
    async def _running(app: FastAPI) -> AsyncIterator[None]:
        await hub.start()
        writer.start()
        scrubber = asyncio.create_task(keep_scrubbing(db), name="scrubber")
        webhooks = WebhookWorker(db, settings)
        if settings.webhook_worker:
            webhooks.start()
        app.state.webhooks = webhooks
        try:
            yield
        finally:
            scrubber.cancel()
            with suppress(asyncio.CancelledError):
                await scrubber
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
        # Short, stable names for generated clients: results.list, ballots.submit (app.routes.openapi).
        generate_unique_id_function=operation_id,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.hub = hub
    app.state.writer = writer
    app.state.keys = keys
    app.state.disk = disk
    # /readyz reads the database under its own watchdog: a probe on a dead connection answers 503.
    app.state.probe = Watchdog(seconds=READY_PROBE_SECONDS, name="readiness-probe")
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

    app.openapi = lambda: documented(app)  # type: ignore[method-assign]
    # The phones' hot route straight on the app, first: no included router to walk before it.
    for route in api.ballots_router.routes:
        app.router.routes.append(route)
    app.include_router(api.router)
    app.include_router(cards.router)
    app.include_router(ballot.router)
    app.mount("/static", VersionedStaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(health.router)
    mount_docs(app)
    for router in (console_auth.router, console_meetings.router, console_units.router, console_admin.router,
                   console_exports.router):
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
    app.add_middleware(CompressExceptSubmits)
    if settings.trusted_proxy_list:
        # The client's address as the configured proxy forwards it (uvicorn's middleware; `serve`
        # turns uvicorn's own handling off, which trusts any local client by default).
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxy_list)
    app.add_middleware(RefuseControlInAddress)  # nothing else reads such an address
    # Outermost of ours: whatever escapes the app is answered with an id, and logged without a traceback.
    app.add_middleware(CatchUnexpected)
    return app


HTTP_PROBLEMS = {404: "not_found", 405: "method_not_allowed"}


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
    app = create_app(get_settings())
    # Everything made so far (some 100,000 objects: the imported modules, the app, its routes and
    # models) lives as long as the process. Left to the collector, each full collection walks them
    # all, and the first ones come with the first burst of ballots: 100-200 ms with the event loop
    # stopped, the slow first second of a meeting (issue #13). Frozen, they are never walked again.
    gc.collect()
    gc.freeze()
    return app
