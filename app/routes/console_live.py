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
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel
from sqlmodel import Session

from app import store
from app.charts import Bar, bar_chart
from app.live import Hub
from app.report import FeedbackReport, feedback_report
from app.routes.access import Reader
from app.routes.api import seen_meeting
from app.routes.console import render
from app.routes.deps import SessionDep, SettingsDep
from app.routes.pages import screen_path
from app.schemas import FiguresPublic

router = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/api/v1", tags=["results"])

# Coalesce a burst of ballots into one update: a room submitting together is one refresh, not 200.
COALESCE_SECONDS = 0.2
# A comment keeps proxies from closing a quiet stream, and lets the server notice a closed tab.
KEEPALIVE_SECONDS = 15.0


class LiveState(BaseModel):
    """What a dashboard needs to decide whether to redraw: turnout, and which figures are published."""

    meeting_id: int
    state: str
    ballots_counted: int
    tokens_issued: int
    attendance: int
    published_at_count: int


def live_state(session: Session, meeting_id: int) -> LiveState:
    view = store.tally(session=session, meeting_id=meeting_id)
    return LiveState(
        meeting_id=meeting_id,
        state=view.meeting.state,
        ballots_counted=view.counted,
        tokens_issued=view.issued,
        attendance=view.meeting.attendance,
        published_at_count=view.tally.published_count,
    )


def dashboard_view(session: Session, meeting_id: int, k: int) -> dict[str, Any]:
    view = store.tally(session=session, meeting_id=meeting_id)
    meeting, tally, issued = view.meeting, view.tally, view.issued
    unit, category = store.unit_of(session=session, meeting=meeting)
    published = store.published_figures(session=session, meeting=meeting, row=tally, k=k)
    figures = FiguresPublic.model_validate_json(published) if published else None
    charts: dict[str, str] = {}
    if figures is not None and figures.score is not None:
        charts["items"] = bar_chart(
            [
                Bar(item.name, Decimal(item.average.rounded), Decimal(item.max), f"{item.average.rounded} / {item.max}")
                for item in figures.items
            ],
            title="各测评项目平均得分",
        )
        charts["points"] = bar_chart(
            [
                Bar(
                    f"{point.id} {point.name}",
                    Decimal(point.average.rounded),
                    Decimal(point.max),
                    f"{point.average.rounded} / {point.max}",
                )
                for item in figures.items
                for point in item.points
            ],
            title="各测评要点平均得分",
        )
    if figures is not None and figures.distribution and figures.ballots >= k:
        most = max(bin.count for bin in figures.distribution) or 1
        charts["distribution"] = bar_chart(
            [
                Bar(f"{bin.label} 分", Decimal(bin.count), Decimal(most), f"{bin.count} 张")
                for bin in figures.distribution
            ],
            title="测评票总分分布",
        )
    comments = store.meeting_comments(session=session, meeting_id=meeting_id) if meeting.state == "closed" else []
    return {
        "meeting": meeting,
        "unit": unit,
        "category": category,
        "tally": tally,
        "counted": view.counted,
        "issued": issued,
        "figures": figures,
        "charts": charts,
        "k": k,
        "comments": comments,
        # The figures move when 2K ballots wait sealed, and then take all but K of them.
        "next_step": tally.published_count + 2 * k if meeting.state != "closed" else None,
    }


@router.get("/meetings/{meeting_id}/live")
def dashboard(
    meeting_id: int, request: Request, session: SessionDep, settings: SettingsDep, principal: Reader
) -> HTMLResponse:
    meeting = seen_meeting(session, principal, meeting_id)
    view = dashboard_view(session, meeting_id, settings.k_anonymity)
    screen_url = screen_path(settings, meeting_id) if meeting.mode == "screen" else None
    return render(request, "organizer/live.html", principal, screen_url=screen_url, **view)


@router.get("/meetings/{meeting_id}/live/fragment")
def dashboard_fragment(
    meeting_id: int, request: Request, session: SessionDep, settings: SettingsDep, principal: Reader
) -> HTMLResponse:
    seen_meeting(session, principal, meeting_id)
    view = dashboard_view(session, meeting_id, settings.k_anonymity)
    return render(request, "organizer/_live_figures.html", principal, **view)


@router.get("/meetings/{meeting_id}/projector")
def projector(
    meeting_id: int,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: Reader,
    scores: bool = False,
) -> HTMLResponse:
    """Full screen for the room: big turnout; the result, when the organizer chooses (?scores=1),
    only after close. The room sees who has just pressed submit: a score that moved with the live
    figures, set beside the result at close, would tell it about those few ballots."""
    seen_meeting(session, principal, meeting_id)
    view = dashboard_view(session, meeting_id, settings.k_anonymity)
    show = scores and view["meeting"].state == "closed"
    return render(request, "organizer/projector.html", principal, show_scores=show, **view)


def visible_meeting(meeting_id: int, session: SessionDep, principal: Reader) -> int:
    """Checked before a stream starts: once it has, an error can no longer become a 404 or 403."""
    seen_meeting(session, principal, meeting_id)
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


def build_report(session: Session, meeting_id: int, k: int) -> FeedbackReport:
    result = store.latest_result(session=session, meeting_id=meeting_id)
    meeting = store.get_meeting(session=session, meeting_id=meeting_id)
    # The unit as the result names it, frozen at close (a rename later changes no report).
    category_names = {c.key: c.name for c in store.categories(session=session)}
    return feedback_report(
        own=FiguresPublic.model_validate_json(result.figures),
        peers=store.peer_results(session=session, meeting=meeting),
        k=k,
        comments=store.meeting_comments(session=session, meeting_id=meeting_id),
        meeting_id=meeting_id, unit_code=result.unit_code, unit_name=result.unit_name,
        category=category_names[result.category],
        year=meeting.year, title=meeting.title, result_version=result.version, digest=result.digest,
        closed_at=result.created_at,
    )


@router.get("/meetings/{meeting_id}/report")
def report_page(
    meeting_id: int, request: Request, session: SessionDep, settings: SettingsDep, principal: Reader
) -> HTMLResponse:
    """The feedback report, printable on A4: the unit's averages against its peers, weakest points marked."""
    seen_meeting(session, principal, meeting_id)
    report = build_report(session, meeting_id, settings.k_anonymity)
    return render(request, "organizer/report.html", principal, report=report)


@api_router.get("/meetings/{meeting_id}/report")
def report_json(meeting_id: int, session: SessionDep, settings: SettingsDep, principal: Reader) -> FeedbackReport:
    """The feedback report's figures (409 until the meeting is closed)."""
    seen_meeting(session, principal, meeting_id)
    return build_report(session, meeting_id, settings.k_anonymity)
