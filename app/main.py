"""The application factory: settings in, a FastAPI app out."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.db import Database, create_database
from app.errors import DomainError, Problem
from app.routes import api, health
from app.routes.deps import error_response
from app.routes.docs import mount_docs
from app.settings import Settings
from app.writer import BallotWriter

log = logging.getLogger("onsite_ballot")


class BodyLimit:
    """Refuse a request body over the limit, declared or streamed, before any handler reads it."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = error_response(request, Problem("request_too_large", {"limit": self.limit}), 413)
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


def create_app(settings: Settings, database: Database | None = None) -> FastAPI:
    db = database or create_database(settings.resolved_database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        writer = BallotWriter(db, k=settings.k_anonymity)
        writer.start()
        app.state.writer = writer
        try:
            yield
        finally:
            await writer.stop()
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
    )
    app.state.settings = settings
    app.state.db = db

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        return error_response(request, exc.problem, exc.status, exc.problems)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            Problem("request_invalid", {"error": f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"})
            for err in exc.errors()
        ]
        return error_response(request, problems[0], 422, problems)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else "request_invalid"
        problem = Problem(code, {"error": exc.detail}) if code == "request_invalid" else Problem(code)
        return error_response(request, problem, exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Type only: a message could quote a token or a ballot.
        log.error(
            "unexpected %s on %s %s",
            type(exc).__name__,
            request.method,
            getattr(request.scope.get("route"), "path", "?"),
        )
        return error_response(request, Problem("internal"), 500)

    app.include_router(api.router)
    app.include_router(health.router)
    mount_docs(app)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    return app


def app_from_env() -> FastAPI:
    """For uvicorn --factory: every worker process builds its app from the environment."""
    from app.settings import get_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return create_app(get_settings())
