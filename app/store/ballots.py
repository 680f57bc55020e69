"""The ballot hot path: spend a code and store its ballot, many per transaction."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Connection, Executable, Select, Table, bindparam, insert, select, text, update
from sqlmodel import col

from app import tokens as tokens_mod
from app.errors import Conflict, DomainError, Invalid, NotFound
from app.models import (
    Ballot,
    BallotToken,
    Meeting,
    Tally,
    TemplateVersion,
)
from app.scoring import ScoredBallot, canonical_json, score_ballot
from app.store.ballot_templates import template_from_body
from app.store.meetings import meeting_ballots, rules_of
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
_WANTED = col(BallotToken.hash).in_(bindparam("hashes", expanding=True))
# Rows are locked in one order by every writer, and by close: meetings (by id, shared), then their
# codes (by hash). Two batches, or a batch and a close, cannot deadlock. On SQLite the writer's
# BEGIN IMMEDIATE is the lock, and FOR UPDATE / FOR SHARE are left out of the SQL.
_MEETING_TABLE: Table = Meeting.__table__  # type: ignore[attr-defined]
_LOCK_MEETINGS: Select[Any] = (
    select(_MEETING_TABLE, col(TemplateVersion.body).label("template_body"))
    .join(
        TemplateVersion,
        (col(TemplateVersion.template_id) == col(Meeting.template_id))
        & (col(TemplateVersion.version) == col(Meeting.template_version)),
    )
    .where(col(Meeting.id).in_(select(col(BallotToken.meeting_id)).where(_WANTED)))
    .order_by(col(Meeting.id))
    .with_for_update(read=True, of=_MEETING_TABLE)
)
_LOCK_TOKENS = (
    select(BallotToken.__table__)  # type: ignore[attr-defined]
    .where(_WANTED)
    .order_by(col(BallotToken.hash))
    .with_for_update()
)
_SPEND = (
    update(BallotToken)
    .where(col(BallotToken.hash) == bindparam("token_hash"), col(BallotToken.used).is_(False))
    .values(used=True, fingerprint=bindparam("new_fingerprint"))
)
_STORE = insert(Ballot)
# PostgreSQL: the same locks with the hashes sent as one JSON array, so that the statement's text
# is the same for every batch and psycopg prepares it once (an expanding IN is a new text for each
# batch size, parsed and planned anew). "= ANY(ARRAY(...))" keeps both reads index lookups.
_PG_HASHES = "ANY(ARRAY(SELECT json_array_elements_text(CAST(:hashes AS json))))"
_LOCK_MEETINGS_PG = text(
    f"SELECT {', '.join(f'meeting.{column.name}' for column in _MEETING_TABLE.columns)},"
    " template_version.body AS template_body FROM meeting JOIN template_version"
    " ON template_version.template_id = meeting.template_id AND template_version.version = meeting.template_version"
    f" WHERE meeting.id IN (SELECT meeting_id FROM ballot_token WHERE hash = {_PG_HASHES})"
    " ORDER BY meeting.id FOR SHARE OF meeting"
)
_LOCK_TOKENS_PG = text(
    f"SELECT {', '.join(column.name for column in BallotToken.__table__.columns)}"  # type: ignore[attr-defined]
    f" FROM ballot_token WHERE hash = {_PG_HASHES} ORDER BY hash FOR UPDATE"
)
# PostgreSQL: the batch's spends and its ballots as one statement each, the rows sent as one JSON
# text. An executemany there costs a round of Python per row (psycopg's pipeline), and so does
# adapting Python lists to arrays; SQLite's executemany runs in C. The planner takes the recordset
# for 100 rows and would join it to every code of the database by a sequential scan: the "= ANY"
# of the same rows' hashes makes the spend an index lookup.
_SPEND_ALL = text(
    "UPDATE ballot_token SET used = true, fingerprint = batch.new_fingerprint"
    " FROM json_to_recordset(CAST(:rows AS json)) AS batch (token_hash text, new_fingerprint text)"
    " WHERE ballot_token.hash = batch.token_hash AND NOT ballot_token.used AND ballot_token.hash"
    " = ANY(ARRAY(SELECT json_array_elements(CAST(:rows AS json)) ->> 'token_hash'))"
)
_STORE_ALL = text(
    "INSERT INTO ballot (id, meeting_id, group_key, answers, total, flagged, comment)"
    " SELECT id, meeting_id, group_key, answers, total, flagged, comment"
    " FROM json_to_recordset(CAST(:rows AS json))"
    " AS batch (id text, meeting_id integer, group_key text, answers text, total text, flagged boolean, comment text)"
)
_TALLY = (
    select(col(Tally.ballot_count), col(Tally.published_count), col(Tally.state))
    .where(col(Tally.meeting_id) == bindparam("meeting_id"))
    .with_for_update()
)
# meeting id -> (the tally text this process last wrote, its parsed form): parsing it again for
# every batch would cost as much as the rest of the batch.
_parsed: dict[int, tuple[str, MeetingTally]] = {}
_ADVANCE = (
    update(Tally)
    .where(col(Tally.meeting_id) == bindparam("tally_meeting"))
    .values(ballot_count=bindparam("new_count"), state=bindparam("new_state"))
)
# Publishing keeps the counts and trimmed sums as they stand; figures are rendered from them when
# someone reads them (store.published_figures). The figures of a close are dropped: no longer current.
_ADVANCE_AND_PUBLISH = _ADVANCE.values(
    published_count=bindparam("new_count"), published_sums=bindparam("new_sums"), published=None
)


class SpentUnderUs(RuntimeError):
    """A locked code changed before its update: cannot happen while the locks hold; the batch is undone."""


def submit_batch(*, conn: Connection, submissions: Sequence[Submission], k: int) -> list[Outcome]:
    """Spend each submission's token and store its ballot, all in the caller's transaction.

    The codes' rows are locked (PostgreSQL: FOR UPDATE; SQLite: the writer's BEGIN IMMEDIATE)
    before they are judged, so what is read is what the one UPDATE for the whole batch finds:
    under any concurrency exactly one ballot is stored per token. The ballots go in as one
    multi-row insert, in hash order: nothing in the box follows the order of arrival.
    """
    hashes = {index: tokens_mod.token_hash(sub.code) for index, sub in enumerate(submissions)}
    wanted: dict[str, Any] = {"hashes": sorted(set(hashes.values()))}
    lock_meetings: Executable = _LOCK_MEETINGS
    lock_tokens: Executable = _LOCK_TOKENS
    if conn.dialect.name == "postgresql":
        wanted["hashes"], lock_meetings, lock_tokens = json.dumps(wanted["hashes"]), _LOCK_MEETINGS_PG, _LOCK_TOKENS_PG
    meetings = {
        meeting.id: _MeetingInfo(meeting, template_from_body(meeting.template_body))
        for meeting in conn.execute(lock_meetings, wanted)
    }
    rows = {row.hash: row for row in conn.execute(lock_tokens, wanted)} if meetings else {}
    spent_now: dict[str, str] = {}  # hash -> fingerprint, for a duplicate within this batch
    outcomes: dict[int, Outcome] = {}
    spends: list[dict[str, str]] = []
    box: list[dict[str, Any]] = []
    for index in sorted(hashes, key=lambda i: hashes[i]):
        sub, token_hash = submissions[index], hashes[index]
        token = rows.get(token_hash)
        if token is None or token.meeting_id not in meetings:  # the latter: minted between the two reads
            outcomes[index] = Outcome(error=NotFound("token_unknown"))
        elif token.void:
            outcomes[index] = Outcome(error=Conflict("token_void"))
        else:
            outcomes[index] = _judge(sub, token_hash, token, meetings[token.meeting_id], spent_now, spends, box)
    if spends:
        _spend_and_store(conn, spends, box)
    for meeting_id in sorted(meetings):
        if meetings[meeting_id].stored:
            advance_tally(conn, meetings[meeting_id], k=k)
    return [outcomes[index] for index in range(len(submissions))]


def _spend_and_store(conn: Connection, spends: list[dict[str, str]], box: list[dict[str, Any]]) -> None:
    if conn.dialect.name == "postgresql":
        spent = conn.execute(_SPEND_ALL, {"rows": json.dumps(spends)}).rowcount
        conn.execute(_STORE_ALL, {"rows": json.dumps(box, ensure_ascii=False)})
    else:
        spent = conn.execute(_SPEND, spends).rowcount
        conn.execute(_STORE, box)
    if spent != len(spends):
        raise SpentUnderUs


def _judge(
    sub: Submission,
    token_hash: str,
    token: Any,
    info: _MeetingInfo,
    spent_now: dict[str, str],
    spends: list[dict[str, str]],
    box: list[dict[str, Any]],
) -> Outcome:
    """Decide one ballot on its locked code; a counted one adds its spend and its row to the batch."""
    try:
        answers = parse_answers(info.template, sub.answers)
    except Invalid as exc:
        if token.used or token_hash in spent_now:
            return Outcome(error=Conflict("token_spent_different"))
        return Outcome(error=exc)
    comment = (sub.comment or "").strip() or None
    answers_text = canonical_json(answers)
    fingerprint = tokens_mod.answers_fingerprint(sub.code, retry_text(answers_text, comment))
    if token.used or token_hash in spent_now:
        # After close the fingerprint is gone: a spent code can then only have counted.
        previous = spent_now.get(token_hash, token.fingerprint)
        if previous is None or previous == fingerprint:
            return Outcome(status="already_counted")
        return Outcome(error=Conflict("token_spent_different"))
    if info.meeting.state != "open":
        return Outcome(error=Conflict("meeting_not_open", state=info.meeting.state))
    scored = score_ballot(info.template, answers, token.group_key)
    spends.append({"token_hash": token_hash, "new_fingerprint": fingerprint})
    box.append(
        {
            "id": secrets.token_hex(16),
            "meeting_id": info.meeting.id,
            "group_key": token.group_key,
            "answers": answers_text,
            "total": format(scored.total, "f"),
            "flagged": scored.flagged,
            "comment": comment,
        }
    )
    spent_now[token_hash] = fingerprint
    info.stored.append(scored)
    return Outcome(status="counted", meeting_id=info.meeting.id)


def retry_text(answers_text: str, comment: str | None) -> str:
    """canonical_json({"answers": answers, "comment": comment or ""}), from the answers' text already made."""
    return f'{{"answers":{answers_text},"comment":{canonical_json(comment or "")}}}'


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
    values: dict[str, Any] = {"tally_meeting": meeting.id, "new_count": count, "new_state": text}
    if count - published_count < k:
        conn.execute(_ADVANCE, values)
    else:
        values["new_sums"] = tally.snapshot(info.template, rules).to_json()
        conn.execute(_ADVANCE_AND_PUBLISH, values)
