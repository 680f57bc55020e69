"""The ballot hot path: spend a code and store its ballot, many per transaction."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlmodel import col

from app import tokens as tokens_mod
from app.errors import Conflict, DomainError, Invalid, NotFound
from app.models import (
    Ballot,
    BallotToken,
    Meeting,
    Tally,
)
from app.scoring import ScoredBallot, canonical_json, score_ballot
from app.store.ballot_templates import get_template
from app.store.meetings import _STATE_ZH, group_specs, meeting_ballots, public_figures, rules_of
from app.tally import MeetingTally
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
    stored: list[ScoredBallot] = field(default_factory=list)


# Built once: constructing a statement costs more than running it, on the path every ballot takes.
_TOKENS = select(BallotToken.__table__).where(col(BallotToken.hash).in_(bindparam("hashes", expanding=True)))  # type: ignore[attr-defined]
_MEETING = (
    select(Meeting.__table__)  # type: ignore[attr-defined]
    .where(col(Meeting.id) == bindparam("meeting_id"))
    .with_for_update(read=True)
)
_SPEND = (
    update(BallotToken)
    .where(col(BallotToken.hash) == bindparam("token_hash"), col(BallotToken.used).is_(False))
    .values(used=True, fingerprint=bindparam("new_fingerprint"))
)
_FINGERPRINT = select(col(BallotToken.fingerprint)).where(col(BallotToken.hash) == bindparam("token_hash"))
_STORE = insert(Ballot)
_TALLY = (
    select(col(Tally.ballot_count), col(Tally.published_count), col(Tally.state))
    .where(col(Tally.meeting_id) == bindparam("meeting_id"))
    .with_for_update()
)
# meeting id -> (the tally text this process last wrote, its parsed form): parsing it again for
# every batch would cost as much as the rest of the batch.
_parsed: dict[int, tuple[str, MeetingTally]] = {}
_ADVANCE = update(Tally).where(col(Tally.meeting_id) == bindparam("tally_meeting"))


def submit_batch(*, conn: Connection, submissions: Sequence[Submission], k: int) -> list[Outcome]:
    """Spend each submission's token and store its ballot, all in the caller's transaction.

    Each token is spent by a conditional UPDATE (used = false -> true): under any concurrency
    exactly one ballot is stored per token. Tokens are handled in hash order, so two workers'
    batches lock rows in the same order and cannot deadlock. The ballots go in as one multi-row
    insert, in that order too: nothing in the box follows the order of arrival.
    """
    hashes = {index: tokens_mod.token_hash(sub.code) for index, sub in enumerate(submissions)}
    rows = {row.hash: row for row in conn.execute(_TOKENS, {"hashes": sorted(set(hashes.values()))}).all()}
    meetings: dict[int, _MeetingInfo] = {}
    spent_now: dict[str, str] = {}  # hash -> fingerprint, for a duplicate within this batch
    outcomes: dict[int, Outcome] = {}
    box: list[dict[str, Any]] = []
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
            meeting = conn.execute(_MEETING, {"meeting_id": token.meeting_id}).one()
            template = get_template(session=conn, template_id=meeting.template_id, version=meeting.template_version)
            info = meetings[token.meeting_id] = _MeetingInfo(meeting, template)
        outcomes[index] = _spend_one(conn, sub, token_hash, token, info, spent_now, box)
    if box:
        conn.execute(_STORE, box)
    for meeting_id in sorted(meetings):
        if meetings[meeting_id].stored:
            advance_tally(conn, meetings[meeting_id], k=k)
    return [outcomes[index] for index in range(len(submissions))]


def _spend_one(
    conn: Connection,
    sub: Submission,
    token_hash: str,
    token: Any,
    info: _MeetingInfo,
    spent_now: dict[str, str],
    box: list[dict[str, Any]],
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
    spent = conn.execute(_SPEND, {"token_hash": token_hash, "new_fingerprint": fingerprint})
    if spent.rowcount != 1:
        # Another worker spent it between our read and our update.
        theirs = conn.execute(_FINGERPRINT, {"token_hash": token_hash}).scalar()
        if theirs is None or theirs == fingerprint:
            return Outcome(status="already_counted")
        return Outcome(error=Conflict("token_spent_different"))
    scored = score_ballot(info.template, answers, token.group_key)
    box.append(
        {
            "id": secrets.token_hex(16),
            "meeting_id": info.meeting.id,
            "group_key": token.group_key,
            "answers": canonical_json(answers),
            "total": format(scored.total, "f"),
            "flagged": scored.flagged,
            "comment": comment,
        }
    )
    spent_now[token_hash] = fingerprint
    info.stored.append(scored)
    return Outcome(status="counted", meeting_id=info.meeting.id)


def advance_tally(conn: Connection, info: _MeetingInfo, *, k: int) -> None:
    """Add the batch's ballots to the running tally; republish once K more have come in.

    The running tally costs the same per ballot at any meeting size (see app.tally). A meeting
    whose tally was never kept (made before it existed) is rebuilt once from its ballots.
    """
    meeting = info.meeting
    count, published_count, state = conn.execute(_TALLY, {"meeting_id": meeting.id}).one()
    rules = rules_of(meeting, k=k)
    cached = _parsed.pop(meeting.id, None)  # put back only once the new text exists
    if state is None:
        tally = MeetingTally()
        for ballot in meeting_ballots(conn=conn, meeting_id=meeting.id):  # the new ones included
            tally.add(score_ballot(info.template, ballot.answers, ballot.group), rules)
    else:
        # The stored text is what this process wrote last, unless a rollback or another worker
        # came between: then it differs, and is read again.
        tally = cached[1] if cached is not None and cached[0] == state else MeetingTally.from_json(state)
        for scored in info.stored:
            tally.add(scored, rules)
    count += len(info.stored)
    text = tally.to_json()
    _parsed[meeting.id] = (text, tally)
    values: dict[str, Any] = {"ballot_count": count, "state": text}
    if count - published_count >= k:
        groups = group_specs(meeting)
        figures = tally.figures(info.template, groups, rules)
        values["published_count"] = count
        values["published"] = public_figures(info.template, meeting, figures, tally.distribution()).model_dump_json()
    conn.execute(_ADVANCE.values(**values), {"tally_meeting": meeting.id})
