"""What every route may depend on: settings, a session, the writer, the caller's language."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from sqlmodel import Session

from app import i18n
from app.errors import Problem, TooManyGuesses
from app.i18n import Lang
from app.sealing import ServerKeys
from app.settings import Settings
from app.writer import BallotWriter


def language(request: Request) -> Lang:
    """``?lang=`` first, then the client's Accept-Language, then Simplified Chinese (app.i18n)."""
    # Only a query string can hold ?lang=: a submit has none, and parsing an empty one costs.
    query = request.query_params.get("lang") if request.scope.get("query_string") else None
    return i18n.choose(query, request.headers.get("accept-language"))


def error_response(
    request: Request, problem: Problem, status: int, problems: list[Problem] | None = None
) -> JSONResponse:
    lang = language(request)
    return JSONResponse(
        {
            "code": problem.code,
            "detail": problem.message(lang),
            "problems": [p.message(lang) for p in (problems or [])],
        },
        status_code=status,
    )


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_session(request: Request) -> Iterator[Session]:
    # A GET only reads: on SQLite its transaction must not queue behind the ballot writer.
    database = request.app.state.db
    opener = database.read_session if request.method in ("GET", "HEAD") else database.session
    with opener() as session:
        yield session


def get_keys(request: Request) -> ServerKeys:
    return request.app.state.keys  # type: ignore[no-any-return]


def get_writer(request: Request) -> BallotWriter:
    return request.app.state.writer  # type: ignore[no-any-return]


def notify_changed(request: Request, meeting_id: int) -> None:
    """Tell the meeting's dashboards, in every worker, that something changed."""
    hub = getattr(request.app.state, "hub", None)
    if hub is not None:
        hub.changed([meeting_id])


def client_address(request: Request) -> str | None:
    # Only for the guess guard's in-memory buckets; never stored, never logged. The peer's address,
    # or the one a configured proxy forwarded (ProxyHeadersMiddleware, see app.main).
    return request.client.host if request.client else None


def wrong_code(request: Request) -> None:
    """Count a code that is not one against its sender (app.guard); TooManyGuesses (429) when the
    sender, or everyone together, has been guessing. Only ever called after the lookup failed."""
    guard = getattr(request.app.state, "guard", None)
    wait = guard.failed(client_address(request)) if guard is not None else None
    if wait is not None:
        raise TooManyGuesses("too_many_guesses", seconds=wait)


SettingsDep = Annotated[Settings, Depends(get_settings)]
KeysDep = Annotated[ServerKeys, Depends(get_keys)]
SessionDep = Annotated[Session, Depends(get_session)]
