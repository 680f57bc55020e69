"""The live dashboard, the projector view, and the push that keeps them current.

Turnout moves with every ballot; the figures are the tally's published ones, which move only when
a group of at least K ballots is mixed into the box, and at close (see app.store.box). A plain
reload renders the same state the push would: the page and its refreshed fragment come from the
same function.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel

from app.live import Hub
from app.report import FeedbackReport
from app.routes.access import Reader, SeenMeeting
from app.routes.console import render
from app.routes.deps import SessionDep, SettingsDep
from app.routes.pages import screen_path
from app.routes.views import LiveState, build_report, dashboard_view, live_state

router = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/api/v1", tags=["results"])

# Coalesce a burst of ballots into one update: a room submitting together is one refresh, not 200.
COALESCE_SECONDS = 0.2
# A comment keeps proxies from closing a quiet stream, and lets the server notice a closed tab.
KEEPALIVE_SECONDS = 15.0


@router.get("/meetings/{meeting_id}/live")
def dashboard(
    meeting_id: int, meeting: SeenMeeting, request: Request, session: SessionDep, settings: SettingsDep,
    principal: Reader,
) -> HTMLResponse:
    view = dashboard_view(session, meeting_id, settings.k_anonymity)
    screen_url = screen_path(settings, meeting_id) if meeting.mode == "screen" else None
    return render(request, "organizer/live.html", principal, screen_url=screen_url, **view)


@router.get("/meetings/{meeting_id}/live/fragment")
def dashboard_fragment(
    meeting_id: int, _: SeenMeeting, request: Request, session: SessionDep, settings: SettingsDep, principal: Reader
) -> HTMLResponse:
    view = dashboard_view(session, meeting_id, settings.k_anonymity)
    return render(request, "organizer/_live_figures.html", principal, **view)


@router.get("/meetings/{meeting_id}/projector")
def projector(
    meeting_id: int,
    _: SeenMeeting,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: Reader,
    scores: bool = False,
) -> HTMLResponse:
    """Full screen for the room: big turnout; the result, when the organizer chooses (?scores=1),
    only after close. The room sees who has just pressed submit: a score that moved with the live
    figures, set beside the result at close, would tell it about those few ballots."""
    view = dashboard_view(session, meeting_id, settings.k_anonymity)
    show = scores and view["meeting"].state == "closed"
    return render(request, "organizer/projector.html", principal, show_scores=show, **view)


def visible_meeting(meeting_id: int, _: SeenMeeting) -> int:
    """Checked before a stream starts: once it has, an error can no longer become a 404 or 403."""
    return meeting_id


@api_router.get("/meetings/{meeting_id}/events", response_class=EventSourceResponse)
async def events(
    request: Request, session: SessionDep, meeting_id: Annotated[int, Depends(visible_meeting)]
) -> AsyncIterator[ServerSentEvent]:
    """Server-sent events: a `tally` event with the live state now, and after every change.

    Each event's data is the turnout and `published_at_count`; read the tally (or reload the
    dashboard fragment) when `published_at_count` or `state` changes.
    """
    database = request.app.state.db
    session.close()  # a stream may stay open for hours; it must not hold a pooled connection

    def read() -> LiveState:
        with database.read_session() as fresh:
            return live_state(fresh, meeting_id)

    async for event in pushed(request, meeting_id, read, "tally"):
        yield event


async def pushed(
    request: Request, meeting_id: int, read: Callable[[], BaseModel], name: str
) -> AsyncIterator[ServerSentEvent]:
    """The state now, then again after every change of the meeting (coalesced), until the client goes."""
    hub: Hub = request.app.state.hub
    async with hub.subscription(meeting_id) as changes:
        last: BaseModel | None = None
        serial = 0
        while True:
            state = await asyncio.to_thread(read)
            if state != last:
                serial += 1
                yield ServerSentEvent(data=state, event=name, id=f"{secrets.token_hex(4)}-{serial}")
                last = state
            try:
                await asyncio.wait_for(changes.get(), timeout=KEEPALIVE_SECONDS)
                await asyncio.sleep(COALESCE_SECONDS)
            except TimeoutError:
                yield ServerSentEvent(comment="keep-alive")
            if await request.is_disconnected():
                return


@router.get("/meetings/{meeting_id}/report")
def report_page(
    meeting_id: int, _: SeenMeeting, request: Request, session: SessionDep, settings: SettingsDep, principal: Reader
) -> HTMLResponse:
    """The feedback report, printable on A4: the unit's averages against its peers, weakest points marked."""
    report = build_report(session, meeting_id, settings.k_anonymity)
    return render(request, "organizer/report.html", principal, report=report)


@api_router.get("/meetings/{meeting_id}/report")
def report_json(meeting_id: int, _: SeenMeeting, session: SessionDep, settings: SettingsDep) -> FeedbackReport:
    """The feedback report's figures (409 until the meeting is closed)."""
    return build_report(session, meeting_id, settings.k_anonymity)
