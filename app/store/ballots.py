"""The ballot hot path: spend a code and keep its ballot sealed, many per transaction.

What this transaction writes is the spent code, the ballot sealed under its meeting's key
(app.sealing), and the meeting's turnout count: never a readable ballot, never the running tally.
The ballot becomes readable only when app.store.box mixes it into a group of at least K, in a
transaction of its own.
"""

from __future__ import annotations

import base64
import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, Executable, Select, Table, bindparam, select, text, update
from sqlmodel import col

from app.errors import Conflict, DomainError, Invalid, NotFound
from app.sealing import NONCE_BYTES, Content, ServerKeys
from app.store.ballot_templates import template_from_body
from app.store.box import BOX_ID_BYTES, sealer_for
from app.tables import BallotToken, Meeting, MeetingSeal, TemplateVersion, Turnout
from app.templates import parse_answers, read_comment


@dataclass(frozen=True)
class Submission:
    code: str
    answers: dict[str, Any]
    comment: str | None


@dataclass(frozen=True)
class Outcome:
    status: Literal["counted", "already_counted"] | None = None
    error: DomainError | None = None
    meeting_id: int | None = None  # set when a ballot was stored: that meeting's turnout changed


@dataclass(frozen=True)
class Spent:
    """A batch's outcomes, in the order of its submissions, and each touched meeting's sealed count."""

    outcomes: list[Outcome]
    sealed: dict[int, int]


# Built once: constructing a statement costs more than running it, on the path every ballot takes.
_WANTED = col(BallotToken.hash).in_(bindparam("hashes", expanding=True))
# Rows are locked in one order by every writer, and by close: meetings (by id, shared), then their
# codes (by hash), then the meetings' turnout. Two batches, or a batch and a close or a mix, cannot
# deadlock. On SQLite the writer's BEGIN IMMEDIATE is the lock, and FOR UPDATE / FOR SHARE are
# left out of the SQL.
_MEETING_TABLE: Table = Meeting.__table__  # type: ignore[attr-defined]
_LOCK_MEETINGS: Select[Any] = (
    select(  # type: ignore[assignment]
        col(Meeting.id), col(Meeting.state), col(TemplateVersion.body).label("template_body"),
        col(MeetingSeal.salt).label("salt"),
    )
    .join(
        TemplateVersion,
        (col(TemplateVersion.template_id) == col(Meeting.template_id))
        & (col(TemplateVersion.version) == col(Meeting.template_version)),
    )
    .outerjoin(MeetingSeal, col(MeetingSeal.meeting_id) == col(Meeting.id))
    .where(col(Meeting.id).in_(select(col(BallotToken.meeting_id)).where(_WANTED)))
    .order_by(col(Meeting.id))
    .with_for_update(read=True, of=_MEETING_TABLE)
)
_LOCK_TOKENS = (
    select(col(BallotToken.hash), col(BallotToken.meeting_id), col(BallotToken.group_key),
           col(BallotToken.used), col(BallotToken.void))
    .where(_WANTED)
    .order_by(col(BallotToken.hash))
    .with_for_update()
)
# SQLite: the batch's spends and sealed rows go straight to the driver's executemany, which runs
# in C; SQLAlchemy's own executemany would turn each row's parameters over in Python first.
_SPEND_SQLITE = "UPDATE ballot_token SET used = 1 WHERE hash = ? AND used = 0"
_SEAL_SQLITE = "INSERT INTO sealed_ballot (id, meeting_id, sealed) VALUES (?, ?, ?)"
_COUNT = (
    update(Turnout)
    .where(col(Turnout.meeting_id) == bindparam("turnout_meeting"))
    .values(ballots=col(Turnout.ballots) + bindparam("added"), sealed=col(Turnout.sealed) + bindparam("added"))
    .returning(col(Turnout.sealed))
)
# PostgreSQL: the same locks with the hashes sent as one JSON array, so that the statement's text
# is the same for every batch and psycopg prepares it once (an expanding IN is a new text for each
# batch size, parsed and planned anew). "= ANY(ARRAY(...))" keeps both reads index lookups.
_PG_HASHES = "ANY(ARRAY(SELECT json_array_elements_text(CAST(:hashes AS json))))"
_LOCK_MEETINGS_PG = text(
    "SELECT meeting.id, meeting.state, template_version.body AS template_body, meeting_seal.salt AS salt"
    " FROM meeting JOIN template_version"
    " ON template_version.template_id = meeting.template_id AND template_version.version = meeting.template_version"
    " LEFT OUTER JOIN meeting_seal ON meeting_seal.meeting_id = meeting.id"
    f" WHERE meeting.id IN (SELECT meeting_id FROM ballot_token WHERE hash = {_PG_HASHES})"
    " ORDER BY meeting.id FOR SHARE OF meeting"
)
_LOCK_TOKENS_PG = text(
    "SELECT hash, meeting_id, group_key, used, void"
    f" FROM ballot_token WHERE hash = {_PG_HASHES} ORDER BY hash FOR UPDATE"
)
# PostgreSQL: the batch's spends and its sealed ballots as one statement each, the rows sent as one
# JSON text. An executemany there costs a round of Python per row (psycopg's pipeline); SQLite's
# executemany runs in C. The planner takes the recordset for 100 rows and would join it to every
# code of the database by a sequential scan: the "= ANY" of the same hashes makes the spend an
# index lookup.
_SPEND_ALL = text(
    "UPDATE ballot_token SET used = true"
    " FROM json_to_recordset(CAST(:rows AS json)) AS batch (token_hash text)"
    " WHERE ballot_token.hash = batch.token_hash AND NOT ballot_token.used AND ballot_token.hash"
    " = ANY(ARRAY(SELECT json_array_elements(CAST(:rows AS json)) ->> 'token_hash'))"
)
_SEAL_ALL = text(
    "INSERT INTO sealed_ballot (id, meeting_id, sealed)"
    " SELECT id, meeting_id, decode(sealed, 'base64')"
    " FROM json_to_recordset(CAST(:rows AS json)) AS batch (id text, meeting_id integer, sealed text)"
)


class SpentUnderUs(RuntimeError):
    """A locked code changed before its update: cannot happen while the locks hold; the batch is undone."""


class MeetingNotSealed(RuntimeError):
    """An open meeting without a sealing key: cannot happen, opening a meeting makes one."""


# Each sealed row takes a random id and a nonce: drawn for the whole batch in one read.
_RANDOM_PER_BALLOT = BOX_ID_BYTES + NONCE_BYTES


@dataclass
class _Batch:
    spends: list[dict[str, str]]
    sealed: list[dict[str, Any]]
    counted: Counter[int]
    random: bytes

    def draw(self) -> tuple[str, bytes]:
        """A random id and a nonce for the next sealed row."""
        at = len(self.sealed) * _RANDOM_PER_BALLOT
        chunk = self.random[at : at + _RANDOM_PER_BALLOT]
        return chunk[:BOX_ID_BYTES].hex(), chunk[BOX_ID_BYTES:]


def submit_batch(*, conn: Connection, submissions: Sequence[Submission], keys: ServerKeys) -> Spent:
    """Spend each submission's code and keep its ballot sealed, all in the caller's transaction.

    The codes' rows are locked (PostgreSQL: FOR UPDATE; SQLite: the writer's BEGIN IMMEDIATE)
    before they are judged, so what is read is what the one UPDATE for the whole batch finds:
    under any concurrency exactly one ballot is kept per code. A spent code answers "already
    counted" whatever comes with it: nothing of the ballot it counted is kept to compare with.
    """
    hashes = {index: keys.code_hash(sub.code) for index, sub in enumerate(submissions)}
    wanted: dict[str, Any] = {"hashes": sorted(set(hashes.values()))}
    lock_meetings: Executable = _LOCK_MEETINGS
    lock_tokens: Executable = _LOCK_TOKENS
    if conn.dialect.name == "postgresql":
        wanted["hashes"], lock_meetings, lock_tokens = json.dumps(wanted["hashes"]), _LOCK_MEETINGS_PG, _LOCK_TOKENS_PG
    meetings = {meeting.id: meeting for meeting in conn.execute(lock_meetings, wanted)}
    tokens = {row.hash: row for row in conn.execute(lock_tokens, wanted)} if meetings else {}
    batch = _Batch(spends=[], sealed=[], counted=Counter(), random=os.urandom(len(submissions) * _RANDOM_PER_BALLOT))
    spent_now: set[str] = set()
    outcomes: dict[int, Outcome] = {}
    for index in sorted(hashes, key=lambda i: hashes[i]):
        token = tokens.get(hashes[index])
        if token is None or token.meeting_id not in meetings:  # the latter: minted between the two reads
            outcomes[index] = Outcome(error=NotFound("token_unknown"))
        elif token.void:
            outcomes[index] = Outcome(error=Conflict("token_void"))
        elif token.used or token.hash in spent_now:
            outcomes[index] = Outcome(status="already_counted")
        else:
            outcomes[index] = _seal_one(submissions[index], token, meetings[token.meeting_id], keys, batch)
            if outcomes[index].status == "counted":
                spent_now.add(token.hash)
    sealed: dict[int, int] = {}
    if batch.spends:
        _spend_and_seal(conn, batch)
        for meeting_id in sorted(batch.counted):
            added = batch.counted[meeting_id]
            sealed[meeting_id] = conn.execute(_COUNT, {"turnout_meeting": meeting_id, "added": added}).scalar_one()
    return Spent([outcomes[index] for index in range(len(submissions))], sealed)


def _seal_one(sub: Submission, token: Any, meeting: Any, keys: ServerKeys, batch: _Batch) -> Outcome:
    """Judge one ballot on its locked, unspent code; a counted one adds its spend and its sealed row."""
    if meeting.state != "open":
        return Outcome(error=Conflict("meeting_not_open", state=meeting.state))
    template = template_from_body(meeting.template_body)
    try:
        answers = parse_answers(template, sub.answers)
        comment = read_comment(sub.comment)
    except Invalid as exc:
        return Outcome(error=exc)
    if meeting.salt is None:
        raise MeetingNotSealed(meeting.id)
    sealer = sealer_for(keys, meeting.id, meeting.salt, template)
    row_id, nonce = batch.draw()
    batch.spends.append({"token_hash": token.hash})
    batch.sealed.append(
        {
            "id": row_id,
            "meeting_id": meeting.id,
            "sealed": sealer.seal(Content(group=token.group_key, answers=answers, comment=comment), nonce),
        }
    )
    batch.counted[meeting.id] += 1
    return Outcome(status="counted", meeting_id=meeting.id)


def _spend_and_seal(conn: Connection, batch: _Batch) -> None:
    # Sealed rows go in by their random ids, an order that follows nothing else.
    rows = sorted(batch.sealed, key=lambda row: row["id"])
    if conn.dialect.name == "postgresql":
        spent = conn.execute(_SPEND_ALL, {"rows": json.dumps(batch.spends)}).rowcount
        for row in rows:
            row["sealed"] = base64.b64encode(row["sealed"]).decode("ascii")
        conn.execute(_SEAL_ALL, {"rows": json.dumps(rows)})
    else:
        spent = conn.exec_driver_sql(_SPEND_SQLITE, [(spend["token_hash"],) for spend in batch.spends]).rowcount
        conn.exec_driver_sql(_SEAL_SQLITE, [(row["id"], row["meeting_id"], row["sealed"]) for row in rows])
    if spent != len(batch.spends):
        raise SpentUnderUs
