"""Liveness and readiness for load balancers and container health checks."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.db import Database
from app.migrate import at_head
from app.watchdog import Stuck

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


def _at_head(database: Database) -> bool:
    with database.reading() as conn:
        conn.execute(text("SELECT 1"))
    return at_head(database.read)


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Ready to take ballots: the server's disk is not full, the database answers within the probe's
    bound, its schema is at the latest migration, and this process's ballot writer is running and not
    stuck on a dead connection.
    A load balancer takes a worker that answers 503 out of rotation; the reason says why."""
    state = request.app.state
    if state.disk.full:
        return _unavailable("disk_full")
    try:
        ready = await state.probe.run(lambda: _at_head(state.db))
    except Stuck:
        return _unavailable("database_timeout")
    except Exception as exc:
        return _unavailable(type(exc).__name__)
    if not ready:
        return _unavailable("migrations not at head")
    writer = state.writer.health
    if writer != "ok":
        return _unavailable(f"writer_{writer}")
    return JSONResponse({"status": "ok"})


def _unavailable(reason: str) -> JSONResponse:
    return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
