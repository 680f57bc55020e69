"""The application factory: settings in, a FastAPI app out."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app import backup
from app.auth import SESSION_LIFETIME
from app.backup import sqlite_path
from app.db import Database, create_database
from app.disk import DiskState
from app.guard import GuessGuard
from app.live import Hub
from app.middleware import BodyLimit, CompressExceptSubmits, RefuseControlInAddress, SessionsExceptPhones
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
    webhooks,
)
from app.routes.docs import mount_docs
from app.routes.failures import CatchUnexpected
from app.routes.handlers import add_error_handlers
from app.routes.openapi import documented, operation_id
from app.routes.pages import STATIC_DIR, VersionedStaticFiles
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

    add_error_handlers(app)

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
    app.include_router(webhooks.router)
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
