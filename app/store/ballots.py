"""The ballot hot path: spend a code and store its ballot, many per transaction."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, insert, select, update
from sqlmodel import col

from app import tokens as tokens_mod
from app.errors import Conflict, DomainError, Invalid, NotFound
from app.models import (
    Ballot,
    BallotToken,
    Meeting,
    Tally,
)
from app.scoring import canonical_json, score_ballot
from app.store.ballot_templates import get_template
from app.store.meetings import _STATE_ZH, figures_for, meeting_ballots
from app.templates import BallotTemplate, parse_answers


@dataclass(frozen=True)
class Submission:
    code: str
    answers: dict[str, Any]
    comment: str | None


@dataclass(frozen=True)
class Outcome:
    status: Literal["counted", "already_counted"] | None = None
    error: DomainError | None = None
    meeting_id: int | None = None  # set when a ballot was stored: that meeting's tally changed


@dataclass
class _MeetingInfo:
    meeting: Any  # the meeting's row, read under a share lock for the batch
    template: BallotTemplate
    added: int = 0


def submit_batch(*, conn: Connection, submissions: Sequence[Submission], k: int) -> list[Outcome]:
    """Spend each submission's token and store its ballot, all in the caller's transaction.

    Each token is spent by a conditional UPDATE (used = false -> true): under any concurrency
    exactly one ballot is stored per token. Tokens are handled in hash order, so two workers'
    batches lock rows in the same order and cannot deadlock.
    """
    hashes = {index: tokens_mod.token_hash(sub.code) for index, sub in enumerate(submissions)}
    rows = {
        row.hash: row
        for row in conn.execute(
            select(BallotToken.__table__).where(col(BallotToken.hash).in_(set(hashes.values())))  # type: ignore[attr-defined]
        ).all()
    }
    meetings: dict[int, _MeetingInfo] = {}
    spent_now: dict[str, str] = {}  # hash -> fingerprint, for a duplicate within this batch
    outcomes: dict[int, Outcome] = {}
    for index in sorted(hashes, key=lambda i: hashes[i]):
        sub, token_hash = submissions[index], hashes[index]
        token = rows.get(token_hash)
        if token is None:
            outcomes[index] = Outcome(error=NotFound("token_unknown"))
            continue
        if token.void:
            outcomes[index] = Outcome(error=Conflict("token_void"))
            continue
        info = meetings.get(token.meeting_id)
        if info is None:
            meeting = conn.execute(
                select(Meeting.__table__).where(Meeting.__table__.c.id == token.meeting_id).with_for_update(read=True)  # type: ignore[attr-defined]
            ).one()
            template = get_template(session=conn, template_id=meeting.template_id, version=meeting.template_version)
            info = meetings[token.meeting_id] = _MeetingInfo(meeting, template)
        outcomes[index] = _spend_one(conn, sub, token_hash, token, info, spent_now)
    for meeting_id in sorted(meetings):
        if meetings[meeting_id].added:
            _advance_tally(conn, meetings[meeting_id], k=k)
    return [outcomes[index] for index in range(len(submissions))]


def _spend_one(
    conn: Connection,
    sub: Submission,
    token_hash: str,
    token: Any,
    info: _MeetingInfo,
    spent_now: dict[str, str],
) -> Outcome:
    try:
        answers = parse_answers(info.template, sub.answers)
    except Invalid as exc:
        if token.used or token_hash in spent_now:
            return Outcome(error=Conflict("token_spent_different"))
        return Outcome(error=exc)
    comment = (sub.comment or "").strip() or None
    fingerprint = tokens_mod.answers_fingerprint(
        sub.code, canonical_json({"answers": answers, "comment": comment or ""})
    )
    previous = spent_now.get(token_hash, token.fingerprint if token.used else None)
    if token.used or token_hash in spent_now:
        # After close the fingerprint is gone: a spent code can then only have counted.
        if previous is None or previous == fingerprint:
            return Outcome(status="already_counted")
        return Outcome(error=Conflict("token_spent_different"))
    if info.meeting.state != "open":
        return Outcome(error=Conflict("meeting_not_open", state=_STATE_ZH.get(info.meeting.state, info.meeting.state)))
    spent = conn.execute(
        update(BallotToken)
        .where(col(BallotToken.hash) == token_hash, col(BallotToken.used).is_(False))
        .values(used=True, fingerprint=fingerprint)
    )
    if spent.rowcount != 1:
        # Another worker spent it between our read and our update.
        theirs = conn.execute(select(col(BallotToken.fingerprint)).where(col(BallotToken.hash) == token_hash)).scalar()
        if theirs is None or theirs == fingerprint:
            return Outcome(status="already_counted")
        return Outcome(error=Conflict("token_spent_different"))
    scored = score_ballot(info.template, answers, token.group_key)
    conn.execute(
        insert(Ballot).values(
            id=secrets.token_hex(16),
            meeting_id=info.meeting.id,
            group_key=token.group_key,
            answers=canonical_json(answers),
            total=format(scored.total, "f"),
            flagged=scored.flagged,
            comment=comment,
        )
    )
    spent_now[token_hash] = fingerprint
    info.added += 1
    return Outcome(status="counted", meeting_id=info.meeting.id)


def _advance_tally(conn: Connection, info: _MeetingInfo, *, k: int) -> None:
    """Count the new ballots; republish the figures once K more ballots have come in."""
    meeting_id = info.meeting.id
    count, published_count = conn.execute(
        update(Tally)
        .where(col(Tally.meeting_id) == meeting_id)
        .values(ballot_count=Tally.ballot_count + info.added)
        .returning(col(Tally.ballot_count), col(Tally.published_count))
    ).one()
    if count - published_count < k:
        return
    ballots = meeting_ballots(conn=conn, meeting_id=meeting_id)
    figures = figures_for(template=info.template, meeting=info.meeting, ballots=ballots, k=k)
    conn.execute(
        update(Tally)
        .where(col(Tally.meeting_id) == meeting_id)
        .values(published_count=len(ballots), published=figures.model_dump_json())
    )
