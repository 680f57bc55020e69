"""What the organizer prints and projects: the A4 card sheet and the screen QR page.

Codes exist in the clear only in the answer that mints them (the service keeps hashes), so
the card sheet is that answer: POST /api/v1/meetings/{id}/cards mints the codes and returns
the printable HTML, once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel
from sqlmodel import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import store
from app.db import Database
from app.errors import Conflict
from app.qr import qr_svg
from app.routes.access import ManagedMeeting, Staff, managed_meeting
from app.routes.ballot import link_unknown, screen_meeting_of
from app.routes.console_live import pushed
from app.routes.deps import KeysDep, SessionDep, SettingsDep
from app.routes.pages import PAGE_HEADERS, Page, PageDep, inline_asset, screen_urls
from app.schemas import CardsBody
from app.sealing import ServerKeys
from app.settings import Settings
from app.tables import Meeting
from app.tokens import printable

router = APIRouter()

# Two columns of four fill an A4 page at a size a phone reads from arm's length.
CARDS_PER_PAGE = 8


@dataclass(frozen=True)
class Card:
    printable: str
    qr: str
    letter: str  # the rater group's letter, "" without groups
    group_name: str
    band: int  # which band pattern: groups differ by letter and pattern, never by colour alone


def _short(url: str) -> str:
    """A URL as people type it: no scheme."""
    parts = urlsplit(url)
    return parts.netloc + parts.path


@router.post(
    "/api/v1/meetings/{meeting_id}/cards",
    status_code=201,
    tags=["meetings"],
    response_class=HTMLResponse,
    responses={201: {"content": {"text/html": {}}, "description": "the printable A4 card sheet"}},
)
def mint_cards(
    meeting_id: int,
    body: CardsBody,
    session: SessionDep,
    settings: SettingsDep,
    keys: KeysDep,
    principal: Staff,
    page: PageDep,
) -> Response:
    """Mint single-use codes and answer with their printable A4 card sheet (HTML; print at 100%).

    `{"count": 40}` (optionally with `"group"`), or `{"groups": {"leaders": 7, ...}}` for every
    group's cards on one sheet. The codes are in this answer only: save it nowhere, print it, and
    mint new cards (voiding the old ones) if the sheet is lost. `?lang=en` for English cards.
    """
    # Who may mint cards is who may mint codes: POST /api/v1/meetings/{id}/tokens.
    meeting = managed_meeting(session, principal, meeting_id)
    return card_sheet(session=session, settings=settings, keys=keys, page=page, actor=principal.name, meeting=meeting,
                      body=body)


def card_sheet(*, session: Session, settings: Settings, keys: ServerKeys, page: Page, actor: str, meeting: Meeting,
               body: CardsBody) -> Response:
    """Mint the cards the body asks for and answer with their sheet: the API's answer, and the
    console's page after its form."""
    minted = store.mint_token_batches(session=session, actor=actor, meeting_id=meeting.id,  # type: ignore[arg-type]
                                      batches=body.batches(), keys=keys)
    unit, _ = store.unit_of(session=session, meeting=meeting)
    groups = {spec.key: (index, spec.name) for index, spec in enumerate(store.group_specs(meeting))}
    base = settings.base_url.rstrip("/")
    cards = []
    for code, group in minted:
        index, name = groups[group] if group is not None else (-1, "")
        cards.append(
            Card(
                printable=printable(code),
                qr=qr_svg(f"{base}/b/{code}", label=page.t("card_scan")),
                letter=chr(ord("A") + index) if index >= 0 else "",
                group_name=name,
                band=index % 4 if index >= 0 else -1,
            )
        )
    sheets = [cards[i : i + CARDS_PER_PAGE] for i in range(0, len(cards), CARDS_PER_PAGE)]
    # The stylesheet travels inside the sheet: saved to a file and printed elsewhere, it still
    # looks the same. The CSP admits that one stylesheet by its hash, and nothing else inline.
    css, css_source = inline_asset("cards.css")
    csp = PAGE_HEADERS["Content-Security-Policy"].replace("style-src 'self'", f"style-src {css_source}")
    return page.render("cards.html", 201, headers={"Content-Security-Policy": csp}, meeting=meeting, unit=unit,
                       sheets=sheets, count=len(cards), entry_url=_short(f"{base}/c"), css=css)


class ScreenLinks(BaseModel):
    meeting_id: int
    mode: Literal["cards", "screen"]
    claim_url: str
    screen_url: str
    attendance: int
    claimed: int


@router.get("/api/v1/meetings/{meeting_id}/screen", tags=["meetings"])
def screen_links(meeting_id: int, _: ManagedMeeting, session: SessionDep, settings: SettingsDep) -> ScreenLinks:
    """A screen meeting's links: the projector page to open, and the link its QR code holds.

    `claimed` is how many codes phones have taken so far, out of the declared `attendance`.
    """
    meeting = store.screen_meeting(conn=session, meeting_id=meeting_id)
    assert meeting is not None, "ManagedMeeting found it"
    if meeting.mode != "screen":
        raise Conflict("meeting_not_screen")
    claim_url, screen_url = screen_urls(settings, meeting_id)
    return ScreenLinks(meeting_id=meeting_id, mode="screen", claim_url=claim_url, screen_url=screen_url,
                       attendance=meeting.attendance, claimed=meeting.claimed)


class ScreenState(BaseModel):
    """What the projector shows and the push updates: turnout only, never a score while open."""

    state: str
    claimed: int
    ballots_counted: int
    attendance: int


def screen_state(database: Database, meeting_id: int) -> ScreenState:
    with database.read_session() as session:
        view = store.tally(session=session, meeting_id=meeting_id)
    # A screen meeting's live codes are the ones phones have claimed.
    return ScreenState(state=view.meeting.state, claimed=view.issued, ballots_counted=view.counted,
                       attendance=view.meeting.attendance)


@router.get("/s/{key}/screen", include_in_schema=False)
def projector(key: str, request: Request, settings: SettingsDep, page: PageDep) -> Response:
    """Full screen for the projector: the unit, one large QR code, the link to type, and claimed
    and counted against attendance, kept current by the push from /s/{key}/events."""
    meeting = screen_meeting_of(request, key)
    if meeting is None:
        return link_unknown(page)
    claim_url, _ = screen_urls(settings, meeting.id)
    return page.render("screen.html", meeting=meeting, qr=qr_svg(claim_url, label=page.t("screen_scan")),
                       short_url=_short(claim_url), live=screen_state(request.app.state.db, meeting.id),
                       events_url=f"/s/{key}/events")


def screen_meeting_id(key: str, request: Request) -> int:
    """Checked before the stream starts: once it has, an error can no longer become a 404."""
    meeting = screen_meeting_of(request, key)
    if meeting is None:
        raise StarletteHTTPException(404)
    return meeting.id


@router.get("/s/{key}/events", include_in_schema=False, response_class=EventSourceResponse)
async def screen_events(
    request: Request, meeting_id: Annotated[int, Depends(screen_meeting_id)]
) -> AsyncIterator[ServerSentEvent]:
    """The projector's push: a `screen` event with turnout now and after every claim or ballot.
    The screen link is its key, as for the page itself; it says nothing a glance at the room does not."""
    database: Database = request.app.state.db
    async for event in pushed(request, meeting_id, lambda: screen_state(database, meeting_id), "screen"):
        yield event
