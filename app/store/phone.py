"""What the phone pages need to know about a code and a screen meeting."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Connection, func, insert, select
from sqlmodel import Session, col

from app import tokens as tokens_mod
from app.sealing import ServerKeys
from app.store.ballot_templates import get_template
from app.tables import BallotToken, Meeting, Unit
from app.templates import BallotTemplate

TokenState = Literal["unknown", "void", "spent", "ready"]


@dataclass(frozen=True)
class BallotAccess:
    """What a phone holding a code may learn: the code's state and, when it has one, its meeting."""

    state: TokenState
    meeting_state: str = ""
    title: str = ""
    unit_name: str = ""
    template: BallotTemplate | None = None
    meeting_id: int | None = None
    mode: str = ""


def ballot_access(*, conn: Session | Connection, code: str, keys: ServerKeys) -> BallotAccess:
    token = conn.execute(
        select(col(BallotToken.meeting_id), col(BallotToken.used), col(BallotToken.void)).where(
            col(BallotToken.hash) == keys.code_hash(code)
        )
    ).first()
    if token is None:
        return BallotAccess("unknown")
    meeting_id, used, void = token
    state, title, template_id, version, unit_name, mode = conn.execute(
        select(
            col(Meeting.state),
            col(Meeting.title),
            col(Meeting.template_id),
            col(Meeting.template_version),
            col(Unit.name),
            col(Meeting.mode),
        )
        .join(Unit, col(Unit.id) == col(Meeting.unit_id))
        .where(col(Meeting.id) == meeting_id)
    ).one()
    template = get_template(session=conn, template_id=template_id, version=version)
    token_state: TokenState = "void" if void else "spent" if used else "ready"
    return BallotAccess(token_state, state, title, unit_name, template, meeting_id, mode)


@dataclass(frozen=True)
class ScreenMeeting:
    id: int
    title: str
    unit_name: str
    mode: str
    state: str
    attendance: int
    claimed: int


def _live_tokens(conn: Session | Connection, meeting_id: int) -> int:
    return int(
        conn.execute(
            select(func.count())
            .select_from(BallotToken)
            .where(col(BallotToken.meeting_id) == meeting_id, col(BallotToken.void).is_(False))
        ).scalar_one()
    )


def screen_meeting(*, conn: Session | Connection, meeting_id: int) -> ScreenMeeting | None:
    """A meeting as the projector and the claim page show it; claimed counts every live code."""
    row = conn.execute(
        select(col(Meeting.title), col(Unit.name), col(Meeting.mode), col(Meeting.state), col(Meeting.attendance))
        .join(Unit, col(Unit.id) == col(Meeting.unit_id))
        .where(col(Meeting.id) == meeting_id)
    ).first()
    if row is None:
        return None
    title, unit_name, mode, state, attendance = row
    return ScreenMeeting(meeting_id, title, unit_name, mode, state, attendance, _live_tokens(conn, meeting_id))


def claim_screen_code(*, conn: Connection, meeting_id: int, keys: ServerKeys) -> str | None:
    """Take one code from an open screen meeting's pool, whose size is the declared attendance.

    None when the meeting is not an open screen meeting or the pool is empty. The meeting row is
    locked first (SQLite's write transaction does the same), so two phones claiming together
    cannot both take the last code. Only the code's hash is kept: no time, no audit event, nothing
    of the phone.
    """
    row = conn.execute(
        select(col(Meeting.mode), col(Meeting.state), col(Meeting.attendance))
        .where(col(Meeting.id) == meeting_id)
        .with_for_update()
    ).first()
    if row is None or row.mode != "screen" or row.state != "open":
        return None
    if _live_tokens(conn, meeting_id) >= row.attendance:
        return None
    code = tokens_mod.mint_code()
    conn.execute(
        insert(BallotToken).values(
            hash=keys.code_hash(code), meeting_id=meeting_id, group_key=None, used=False, void=False
        )
    )
    return code
