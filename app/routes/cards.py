"""What the organizer prints and projects: the A4 card sheet and the screen QR page.

Codes exist in the clear only in the answer that mints them (the service keeps hashes), so
the card sheet is that answer: POST /api/v1/meetings/{id}/cards mints the codes and returns
the printable HTML, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel

from app import store
from app.errors import Conflict
from app.models import MintBody
from app.qr import qr_svg
from app.routes.access import Staff
from app.routes.api import managed_meeting
from app.routes.ballot import link_unknown, screen_meeting_of
from app.routes.deps import SessionDep, SettingsDep
from app.routes.pages import PAGE_HEADERS, PageDep, inline_asset, screen_urls
from app.tokens import printable

router = APIRouter()

# Two columns of four fill an A4 page at a size a phone reads from arm's length.
CARDS_PER_PAGE = 8
# The projector page reloads itself (no script needed) to show how many have claimed.
SCREEN_REFRESH_SECONDS = 15


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
    meeting_id: int, body: MintBody, session: SessionDep, settings: SettingsDep, principal: Staff, page: PageDep
) -> Response:
    """Mint single-use codes and answer with their printable A4 card sheet (HTML; print at 100%).

    The codes are in this answer only: save it nowhere, print it, and mint new cards (voiding
    the old ones) if the sheet is lost. `?lang=en` for English cards.
    """
    # Who may mint cards is who may mint codes: POST /api/v1/meetings/{id}/tokens.
    meeting = managed_meeting(session, principal, meeting_id)
    minted = store.mint_tokens(session=session, actor=principal.name, meeting_id=meeting_id, count=body.count,
                               group=body.group)
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
def screen_links(meeting_id: int, session: SessionDep, settings: SettingsDep, principal: Staff) -> ScreenLinks:
    """A screen meeting's links: the projector page to open, and the link its QR code holds.

    `claimed` is how many codes phones have taken so far, out of the declared `attendance`.
    """
    managed_meeting(session, principal, meeting_id)
    meeting = store.screen_meeting(conn=session, meeting_id=meeting_id)
    assert meeting is not None, "managed_meeting found it"
    if meeting.mode != "screen":
        raise Conflict("meeting_not_screen")
    claim_url, screen_url = screen_urls(settings, meeting_id)
    return ScreenLinks(meeting_id=meeting_id, mode="screen", claim_url=claim_url, screen_url=screen_url,
                       attendance=meeting.attendance, claimed=meeting.claimed)


@router.get("/s/{key}/screen", include_in_schema=False)
def projector(key: str, request: Request, settings: SettingsDep, page: PageDep) -> Response:
    """Full screen for the projector: one large QR code, the short link, claimed of declared."""
    meeting = screen_meeting_of(request, key)
    if meeting is None:
        return link_unknown(page)
    claim_url, _ = screen_urls(settings, meeting.id)
    return page.render("screen.html", meeting=meeting, qr=qr_svg(claim_url, label=page.t("screen_scan")),
                       short_url=_short(claim_url), refresh=SCREEN_REFRESH_SECONDS)
