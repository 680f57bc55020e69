"""The running tally as the console and the API read it: counts, and the figures published so far."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlmodel import Session, col

from app.figures import group_specs, public_figures, rules_of, without_groups
from app.store.ballot_templates import get_template
from app.store.meetings import get_meeting
from app.tables import BallotToken, Meeting, Tally, Turnout
from app.tally import Snapshot


@dataclass(frozen=True)
class TallyView:
    meeting: Meeting
    tally: Tally  # the box and the figures published from it
    counted: int  # codes spent: ballots acknowledged, sealed or already mixed
    issued: int  # live codes


def tally(*, session: Session, meeting_id: int) -> TallyView:
    meeting = get_meeting(session=session, meeting_id=meeting_id)
    row = session.get(Tally, meeting_id)
    assert row is not None
    turnout = session.get(Turnout, meeting_id)
    issued = session.execute(
        select(func.count())
        .select_from(BallotToken)
        .where(col(BallotToken.meeting_id) == meeting_id, col(BallotToken.void).is_(False))
    ).scalar_one()
    return TallyView(meeting, row, turnout.ballots if turnout is not None else 0, int(issued))


# (meeting id, published count, K) -> (the published sums, the figures rendered from them, as JSON):
# rendering takes about a millisecond, and every dashboard reads again after each step of K.
_rendered: dict[tuple[int, int, int], tuple[str, str]] = {}
RENDERED_KEPT = 256


def published_figures(*, session: Session, meeting: Meeting, row: Tally, k: int) -> str | None:
    """The figures last published, as FiguresPublic JSON; None before the first step of K.

    After close they are the recount, kept in the row. While the meeting is open the mixer keeps
    only the counts and trimmed sums as they stood after the last group (app.tally.Snapshot), and
    the figures are rendered from them here, without rater groups apart: every worker renders the
    same figures from the same sums.
    """
    if row.published is not None:
        return row.published
    if row.published_sums is None:
        return None
    assert meeting.id is not None
    key = (meeting.id, row.published_count, k)
    cached = _rendered.get(key)
    if cached is not None and cached[0] == row.published_sums:
        return cached[1]
    template = get_template(session=session, template_id=meeting.template_id, version=meeting.template_version)
    sums = Snapshot.from_json(row.published_sums)
    figures = without_groups(sums.figures(template, group_specs(meeting), rules_of(meeting, k=k)))
    text = public_figures(template, meeting, figures, sums.distribution()).model_dump_json()
    if len(_rendered) >= RENDERED_KEPT:
        del _rendered[next(iter(_rendered))]
    _rendered[key] = (row.published_sums, text)
    return text
