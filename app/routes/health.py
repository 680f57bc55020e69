"""Liveness and readiness for load balancers and container health checks."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.migrate import at_head

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    """The database answers and its schema is at the latest migration."""
    database = request.app.state.db
    try:
        with database.reading() as conn:
            conn.execute(text("SELECT 1"))
        ready = at_head(database.read)
    except Exception as exc:
        return JSONResponse({"status": "unavailable", "reason": type(exc).__name__}, status_code=503)
    if not ready:
        return JSONResponse({"status": "unavailable", "reason": "migrations not at head"}, status_code=503)
    return JSONResponse({"status": "ok"})
