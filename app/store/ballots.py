"""The ballot hot path: spend a code and keep its ballot sealed, many per transaction.

What this transaction writes is the spent code, the ballot sealed under its meeting's key
(app.sealing), and the meeting's turnout count: never a readable ballot, never the running tally.
The ballot becomes readable only when app.store.box mixes it into a group of at least K, in a
transaction of its own.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection

from app.errors import Conflict, DomainError, Invalid, NotFound
from app.sealing import NONCE_BYTES, Content, ServerKeys
from app.store.ballot_templates import template_from_body
from app.store.box import BOX_ID_BYTES, sealer_for
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


# Rows are locked in one order by every writer, and by close: meetings (by id, shared), then their
# codes (by hash), then the meetings' turnout. Two batches, or a batch and a close or a mix, cannot
# deadlock. On SQLite the writer's BEGIN IMMEDIATE is the lock, and FOR UPDATE / FOR SHARE are
# left out of the SQL.
#
# Every statement of a batch goes straight to the driver, with a text that is the same for every
# batch: SQLAlchemy's compiled statements cost more to run than the queries themselves here, and
# an expanding IN makes a new text for each batch size. SQLite: the codes' hashes as one JSON list
# (json_each), the spends and sealed rows through the driver's executemany, which runs in C.
_MEETINGS_SQL = (
    "SELECT meeting.id, meeting.state, template_version.body AS template_body, meeting_seal.salt AS salt"
    " FROM meeting JOIN template_version"
    " ON template_version.template_id = meeting.template_id AND template_version.version = meeting.template_version"
    " LEFT OUTER JOIN meeting_seal ON meeting_seal.meeting_id = meeting.id"
    " WHERE meeting.id IN (SELECT meeting_id FROM ballot_token WHERE hash {hashes}) ORDER BY meeting.id"
)
_TOKENS_SQL = "SELECT hash, meeting_id, group_key, used, void FROM ballot_token WHERE hash {hashes} ORDER BY hash"
_SQLITE_HASHES = "IN (SELECT value FROM json_each(?))"
_LOCK_MEETINGS_SQLITE = _MEETINGS_SQL.format(hashes=_SQLITE_HASHES)
_LOCK_TOKENS_SQLITE = _TOKENS_SQL.format(hashes=_SQLITE_HASHES)
_SPEND_SQLITE = "UPDATE ballot_token SET used = 1 WHERE hash = ? AND used = 0"
_SEAL_SQLITE = "INSERT INTO sealed_ballot (id, meeting_id, sealed) VALUES (?, ?, ?)"
_COUNT_SQLITE = "UPDATE turnout SET ballots = ballots + ?, sealed = sealed + ? WHERE meeting_id = ? RETURNING sealed"
# PostgreSQL: the same locks, and the batch's writes, as driver statements whose lists travel as
# arrays in PostgreSQL's binary format ("%(name)b"): each statement's text is the same for every
# batch, so psycopg prepares it once, and the server reads each array element as it is, with no
# text to parse. (Sent as JSON, the sealed ballots, 2 KB each in base64, cost the server more to
# lex than to store, and the client as much to encode.) The hashes are read through a subquery,
# "= ANY(ARRAY(SELECT unnest(...)))": the planner then cannot count them and looks each one up by
# the key, where with the array in sight it scans a small ledger whole (and a test reads the plans).
_PG_HASHES = "= ANY(ARRAY(SELECT unnest(%(hashes)b::text[])))"
_LOCK_MEETINGS_PG = _MEETINGS_SQL.format(hashes=_PG_HASHES) + " FOR SHARE OF meeting"
_LOCK_TOKENS_PG = _TOKENS_SQL.format(hashes=_PG_HASHES) + " FOR UPDATE"
# The spends and the sealed rows in one statement (one round trip), with how many codes the update
# found unspent, meeting by meeting; for a batch of one meeting (nearly all of them), its turnout
# count too. A batch of several meetings counts each in a statement of its own, in the order of
# their ids, as every writer and mixer takes them: one UPDATE of several rows takes their locks in
# no set order, and two batches that took them in opposite orders would deadlock. With
# _NOTIFYING, also the NOTIFY that tells every worker's dashboards (app.live), sent at the commit.
_SPEND_AND_SEAL_PG = (
    "WITH spent AS ("
    " UPDATE ballot_token SET used = true WHERE hash = ANY(ARRAY(SELECT unnest(%(spends)b::text[]))) AND NOT used"
    " RETURNING meeting_id),"
    " sealed AS ("
    " INSERT INTO sealed_ballot (id, meeting_id, sealed)"
    " SELECT * FROM unnest(%(ids)b::text[], %(meetings)b::int[], %(sealed)b::bytea[]))"
)
_SPEND_SEAL_COUNT_PG = (
    _SPEND_AND_SEAL_PG + ", counted AS (SELECT meeting_id, count(*) AS added FROM spent GROUP BY meeting_id)"
    " UPDATE turnout SET ballots = turnout.ballots + counted.added, sealed = turnout.sealed + counted.added"
    " FROM counted WHERE turnout.meeting_id = counted.meeting_id"
    " RETURNING turnout.meeting_id, turnout.sealed, counted.added"
)
_SPEND_SEAL_PG = _SPEND_AND_SEAL_PG + " SELECT meeting_id, NULL, count(*) FROM spent GROUP BY meeting_id"
_COUNT_PG = (
    "UPDATE turnout SET ballots = ballots + %(added)s, sealed = sealed + %(added)s"
    " WHERE meeting_id = %(meeting)s RETURNING sealed"
)
_NOTIFYING = ", pg_notify(%(channel)s, turnout.meeting_id::text)"


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


def submit_batch(
    *, conn: Connection, submissions: Sequence[Submission], keys: ServerKeys, notify: str | None = None
) -> Spent:
    """Spend each submission's code and keep its ballot sealed, all in the caller's transaction.

    ``notify``: PostgreSQL, a channel on which each meeting that counted a ballot is announced
    (its id), in the same statement as the spends.

    The codes' rows are locked (PostgreSQL: FOR UPDATE; SQLite: the writer's BEGIN IMMEDIATE)
    before they are judged, so what is read is what the one UPDATE for the whole batch finds:
    under any concurrency exactly one ballot is kept per code. A spent code answers "already
    counted" whatever comes with it: nothing of the ballot it counted is kept to compare with.
    """
    hashes = {index: keys.code_hash(sub.code) for index, sub in enumerate(submissions)}
    wanted = sorted(set(hashes.values()))
    postgresql = conn.dialect.name == "postgresql"
    listed: Any = {"hashes": wanted} if postgresql else (json.dumps(wanted),)
    lock_meetings, lock_tokens = (
        (_LOCK_MEETINGS_PG, _LOCK_TOKENS_PG) if postgresql else (_LOCK_MEETINGS_SQLITE, _LOCK_TOKENS_SQLITE)
    )
    meetings = {meeting.id: meeting for meeting in conn.exec_driver_sql(lock_meetings, listed)}
    tokens = {row.hash: row for row in conn.exec_driver_sql(lock_tokens, listed)} if meetings else {}
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
    if batch.spends and postgresql:
        sealed = _spend_seal_count_pg(conn, batch, notify)
    elif batch.spends:
        _spend_and_seal_sqlite(conn, batch)
        for meeting_id in sorted(batch.counted):
            added = batch.counted[meeting_id]
            sealed[meeting_id] = conn.exec_driver_sql(_COUNT_SQLITE, (added, added, meeting_id)).scalar_one()
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


def _spend_and_seal_sqlite(conn: Connection, batch: _Batch) -> None:
    # Sealed rows go in by their random ids, an order that follows nothing else.
    rows = sorted(batch.sealed, key=lambda row: row["id"])
    spent = conn.exec_driver_sql(_SPEND_SQLITE, [(spend["token_hash"],) for spend in batch.spends]).rowcount
    conn.exec_driver_sql(_SEAL_SQLITE, [(row["id"], row["meeting_id"], row["sealed"]) for row in rows])
    if spent != len(batch.spends):
        raise SpentUnderUs


def _spend_seal_count_pg(conn: Connection, batch: _Batch, notify: str | None) -> dict[int, int]:
    # Sealed rows go in by their random ids, an order that follows nothing else.
    rows = sorted(batch.sealed, key=lambda row: row["id"])
    notifying = _NOTIFYING if notify else ""
    one_meeting = len(batch.counted) == 1
    counts = conn.exec_driver_sql(
        _SPEND_SEAL_COUNT_PG + notifying if one_meeting else _SPEND_SEAL_PG,
        {
            "spends": [spend["token_hash"] for spend in batch.spends],
            "ids": [row["id"] for row in rows],
            "meetings": [row["meeting_id"] for row in rows],
            "sealed": [row["sealed"] for row in rows],
            "channel": notify,
        },
    ).all()
    if {row[0]: row[2] for row in counts} != batch.counted:
        raise SpentUnderUs
    if one_meeting:
        return {row[0]: row[1] for row in counts}
    return {
        meeting_id: conn.exec_driver_sql(
            _COUNT_PG + notifying, {"added": batch.counted[meeting_id], "meeting": meeting_id, "channel": notify}
        ).scalar_one()
        for meeting_id in sorted(batch.counted)
    }
