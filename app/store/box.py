"""The ballot box: sealed ballots mixed in, in groups of at least K, and the running tally kept with them.

A ballot reaches the box only here, in a transaction that spends no code (app.store.ballots does
the spending): the mixer opens a meeting's sealed ballots, picks all but K of them at random
(app.disclosure), scores them, and writes them with new random ids in a random order, all in one
transaction. So the box's physical order, its rows' transaction ids and the write-ahead log tell
at most which mixed group a ballot was in, and the running tally, written in the same transaction,
moves only by whole groups.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, Select, Table, bindparam, delete, select, update
from sqlmodel import Session, col

from app.disclosure import mix_selection, random_order
from app.figures import StoredBallot, rules_of
from app.scoring import ScoredBallot, canonical_json, score_ballot
from app.sealing import Sealer, ServerKeys, sealed_size
from app.store.ballot_templates import template_from_body
from app.tables import Ballot, Meeting, MeetingSeal, SealedBallot, Tally, TemplateVersion, Turnout
from app.tally import MeetingTally
from app.templates import BallotTemplate

log = logging.getLogger("onsite_ballot.box")
BOX_ID_BYTES = 16


def meeting_ballots(*, conn: Session | Connection, meeting_id: int) -> list[StoredBallot]:
    """A meeting's ballots in random-id order: the only order the box has."""
    rows = conn.execute(
        select(col(Ballot.group_key), col(Ballot.answers), col(Ballot.comment))
        .where(col(Ballot.meeting_id) == meeting_id)
        .order_by(col(Ballot.id))
    ).all()
    return [StoredBallot(group, json.loads(answers), comment) for group, answers, comment in rows]


# (meeting id, salt) -> its sealer: deriving the key and setting up the cipher for every batch
# would cost more than sealing the batch. A reopened meeting has a new salt, hence a new entry.
_sealers: dict[tuple[int, bytes], Sealer] = {}
SEALERS_KEPT = 256


def sealer_for(keys: ServerKeys, meeting_id: int, salt: bytes, template: BallotTemplate) -> Sealer:
    found = _sealers.get((meeting_id, salt))
    if found is None:
        if len(_sealers) >= SEALERS_KEPT:
            del _sealers[next(iter(_sealers))]
        found = _sealers[(meeting_id, salt)] = Sealer(keys.meeting_key(salt), meeting_id, sealed_size(template))
    return found


def forget_sealer(meeting_id: int) -> None:
    """Drop a closed meeting's key from this process's memory too."""
    for key in [key for key in _sealers if key[0] == meeting_id]:
        del _sealers[key]


_MEETING_TABLE: Table = Meeting.__table__  # type: ignore[attr-defined]
# What a mix reads of its meeting: the template and the sealing salt.
_MEETING_TO_MIX: Select[Any] = (
    select(_MEETING_TABLE, col(TemplateVersion.body).label("template_body"), col(MeetingSeal.salt).label("salt"))
    .join(
        TemplateVersion,
        (col(TemplateVersion.template_id) == col(Meeting.template_id))
        & (col(TemplateVersion.version) == col(Meeting.template_version)),
    )
    .outerjoin(MeetingSeal, col(MeetingSeal.meeting_id) == col(Meeting.id))
    .where(col(Meeting.id) == bindparam("meeting_id"))
)
# The meeting is locked shared, as a batch of spends locks it: close, which locks it exclusively,
# waits for a mix in progress, and a mix waits for a close.
_MEETING_FOR_MIX: Select[Any] = _MEETING_TO_MIX.with_for_update(read=True, of=_MEETING_TABLE)
_TALLY_NOW = select(col(Tally.ballot_count), col(Tally.state)).where(col(Tally.meeting_id) == bindparam("meeting_id"))
# One mixer per meeting at a time: the tally row is the meeting's mixing lock.
_TALLY = _TALLY_NOW.with_for_update()
_PENDING = select(col(SealedBallot.id), col(SealedBallot.sealed)).where(
    col(SealedBallot.meeting_id) == bindparam("meeting_id")
)
# PostgreSQL: read in the binary format. In text a sealed ballot travels as hex, twice its size;
# a group's worth (a quarter of a megabyte) cost the server more to encode and send than the rest
# of the mix.
_PENDING_PG = "SELECT id, sealed FROM sealed_ballot WHERE meeting_id = %(meeting_id)s"


class _Pending(NamedTuple):
    id: str
    sealed: bytes


def _pending(conn: Connection, meeting_id: int) -> list[_Pending]:
    if conn.dialect.name != "postgresql":
        return [_Pending(*row) for row in conn.execute(_PENDING, {"meeting_id": meeting_id})]
    with conn.connection.driver_connection.cursor(binary=True) as cursor:  # type: ignore[union-attr]
        cursor.execute(_PENDING_PG, {"meeting_id": meeting_id})
        return [_Pending(*row) for row in cursor.fetchall()]
# The ids of a group, straight to the driver: one statement text whatever the group's size, so
# that it is prepared once (an expanding IN is a new text, parsed and planned anew, for each size).
_UNSEALED_SQLITE = "DELETE FROM sealed_ballot WHERE id = ?"
_UNSEALED_PG = "DELETE FROM sealed_ballot WHERE id = ANY(%(ids)b::text[])"
# SQLite: straight to the driver's executemany (see app.store.ballots).
_STORE_SQLITE = (
    "INSERT INTO ballot (id, meeting_id, group_key, answers, total, flagged, comment) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_BOX_COLUMNS = ("id", "meeting_id", "group_key", "answers", "total", "flagged", "comment")
# PostgreSQL: the group as one statement, its columns as arrays in the binary format (see
# app.store.ballots): nothing for the server to parse, and one prepared text for every group.
_STORE_PG = (
    "INSERT INTO ballot (id, meeting_id, group_key, answers, total, flagged, comment)"
    " SELECT * FROM unnest(%(id)b::text[], %(meeting_id)b::int[], %(group_key)b::text[], %(answers)b::text[],"
    " %(total)b::text[], %(flagged)b::bool[], %(comment)b::text[])"
)
_PUBLISH = (
    update(Tally)
    .where(col(Tally.meeting_id) == bindparam("tally_meeting"))
    .values(
        ballot_count=bindparam("new_count"),
        published_count=bindparam("new_count"),
        state=bindparam("new_state"),
        published_sums=bindparam("new_sums"),
        published=None,
    )
)
_MIXED = (
    update(Turnout)
    .where(col(Turnout.meeting_id) == bindparam("turnout_meeting"))
    .values(sealed=col(Turnout.sealed) - bindparam("mixed"))
    .returning(col(Turnout.sealed))
)
# meeting id -> (the tally text this process last wrote, its parsed form): parsing it again for
# every group would cost as much as the rest of the mix. Taken out while a group is being planned
# (the plan adds to it), put back once the plan's transaction has written it.
_parsed: dict[int, tuple[str, MeetingTally]] = {}


@dataclass
class MixPlan:
    """A group chosen, opened, scored and tallied: what one mix writes, and what it was read from."""

    meeting_id: int
    salt: bytes | None
    state: str | None  # the tally text the plan was computed from
    chosen: list[str]  # the sealed rows that leave
    rows: list[dict[str, Any]]  # the box rows that come in, in the order they are written
    count: int
    tally: MeetingTally
    text: str
    sums: str
    rewrite: bool = False


def mix(
    *, conn: Connection, meeting_id: int, keys: ServerKeys, k: int, final: bool = False, rewrite: bool = False
) -> int:
    """Move a meeting's sealed ballots into the box, if a group is due; how many were moved.

    While the meeting is open a group is due once 2K wait, and takes all but K of them (chosen at
    random). ``final`` (at close) takes them all. ``rewrite`` (closing again with fewer than K new
    ballots, on an administrator's word) writes the whole box anew with them, in one random order,
    so that no transaction holds fewer than K ballots even then.
    """
    meeting = conn.execute(_MEETING_FOR_MIX, {"meeting_id": meeting_id}).first()
    if meeting is None:
        return 0
    count, state = conn.execute(_TALLY, {"meeting_id": meeting_id}).one()
    pending = _pending(conn, meeting_id)
    plan = _plan(conn, meeting, count, state, pending, keys=keys, k=k, final=final, rewrite=rewrite)
    if plan is None:
        return 0
    _write(conn, plan)
    return len(plan.chosen)


def plan_mix(*, conn: Connection, meeting_id: int, keys: ServerKeys, k: int) -> MixPlan | None:
    """The next group of an open meeting, read and computed outside any write transaction.

    Opening, scoring and tallying a group is most of a mix's work; done here, on a reading
    connection, it holds no lock, and the writer goes on spending codes meanwhile. The plan is
    written by apply_mixes, which first makes sure that nothing was mixed since it was read. None
    when no group is due (or the meeting is closing: close mixes what is left).
    """
    meeting = conn.execute(_MEETING_TO_MIX, {"meeting_id": meeting_id}).first()
    if meeting is None or meeting.state != "open":
        return None
    count, state = conn.execute(_TALLY_NOW, {"meeting_id": meeting_id}).one()
    pending = _pending(conn, meeting_id)
    return _plan(conn, meeting, count, state, pending, keys=keys, k=k, final=False, rewrite=False)


def apply_mixes(*, conn: Connection, plans: Sequence[MixPlan]) -> dict[int, int]:
    """Write planned groups in the caller's transaction, each only if its meeting is as the plan read
    it (same sealing salt, same tally: nothing mixed, closed or reopened since). Each written
    meeting -> how many ballots still wait sealed there."""
    current = []
    for plan in sorted(plans, key=lambda p: p.meeting_id):
        meeting = conn.execute(_MEETING_FOR_MIX, {"meeting_id": plan.meeting_id}).first()
        if meeting is None or meeting.salt != plan.salt:
            continue
        _, state = conn.execute(_TALLY, {"meeting_id": plan.meeting_id}).one()
        if state == plan.state:
            current.append(plan)
    return {plan.meeting_id: _write(conn, plan) for plan in current}


def _plan(
    conn: Connection, meeting: Any, count: int, state: str | None, pending: Sequence[Any], *,
    keys: ServerKeys, k: int, final: bool, rewrite: bool,
) -> MixPlan | None:
    meeting_id = meeting.id
    template = template_from_body(meeting.template_body)
    # The system's own randomness decides which ballots wait for the next group and the order ballots are written in.
    chosen = mix_selection(pending, k=k, final=final, random_bytes=os.urandom)
    if not chosen and not rewrite:
        return None
    opened: list[ScoredBallot] = []
    rows: list[dict[str, Any]] = []
    if chosen:
        if meeting.salt is None:
            raise MeetingKeyGone(meeting_id)
        sealer = sealer_for(keys, meeting_id, meeting.salt, template)
        for pending_row in chosen:
            content = sealer.open(pending_row.sealed)
            scored = score_ballot(template, content.answers, content.group)
            opened.append(scored)
            rows.append(_box_row(meeting_id, scored, content.comment))
    rules = rules_of(meeting, k=k)
    cached = _parsed.pop(meeting_id, None)  # put back only once the new text is written
    if rewrite or state is None:
        # Every ballot of the meeting goes through the tally again: the ones in the box (a meeting
        # whose tally was never kept, or the box being rewritten) and the new ones.
        earlier = meeting_ballots(conn=conn, meeting_id=meeting_id)
        earlier_scored = [score_ballot(template, b.answers, b.group) for b in earlier]
        tally = MeetingTally()
        for scored in [*earlier_scored, *opened]:
            tally.add(scored, rules)
        if rewrite:
            rows = random_order(
                [*rows, *(_box_row(meeting_id, s, b.comment) for s, b in zip(earlier_scored, earlier, strict=True))],
                os.urandom,
            )
        count = len(earlier) + len(opened)
    else:
        # The stored text is what this process wrote last, unless a rollback or another worker
        # came between: then it differs, and is read again.
        tally = cached[1] if cached is not None and cached[0] == state else MeetingTally.from_json(state)
        for scored in opened:
            tally.add(scored, rules)
        count += len(opened)
    return MixPlan(
        meeting_id=meeting_id, salt=meeting.salt, state=state, chosen=[row.id for row in chosen], rows=rows,
        count=count, tally=tally, text=tally.to_json(), sums=tally.snapshot(template, rules).to_json(),
        rewrite=rewrite,
    )


def _write(conn: Connection, plan: MixPlan) -> int:
    """Write a planned group; how many ballots of the meeting still wait sealed."""
    postgresql = conn.dialect.name == "postgresql"
    if plan.rewrite:
        conn.execute(delete(Ballot).where(col(Ballot.meeting_id) == plan.meeting_id))
    rows = plan.rows
    if rows:
        # New random ids, drawn in one read: a sealed row's id stays behind with the spend it came with.
        ids = os.urandom(BOX_ID_BYTES * len(rows)).hex()
        for index, box_row in enumerate(rows):
            box_row["id"] = ids[2 * BOX_ID_BYTES * index : 2 * BOX_ID_BYTES * (index + 1)]
        if postgresql:
            conn.exec_driver_sql(_STORE_PG, {name: [row[name] for row in rows] for name in _BOX_COLUMNS})
        else:
            conn.exec_driver_sql(_STORE_SQLITE, [tuple(row[name] for name in _BOX_COLUMNS) for row in rows])
    waiting = 0
    if plan.chosen:
        if postgresql:
            unsealed = conn.exec_driver_sql(_UNSEALED_PG, {"ids": plan.chosen}).rowcount
        else:
            unsealed = conn.exec_driver_sql(_UNSEALED_SQLITE, [(row_id,) for row_id in plan.chosen]).rowcount
        if unsealed != len(plan.chosen):
            raise MixedUnderUs(plan.meeting_id)
        waiting = conn.execute(_MIXED, {"turnout_meeting": plan.meeting_id, "mixed": len(plan.chosen)}).scalar_one()
    conn.execute(
        _PUBLISH,
        {"tally_meeting": plan.meeting_id, "new_count": plan.count, "new_state": plan.text, "new_sums": plan.sums},
    )
    _parsed[plan.meeting_id] = (plan.text, plan.tally)
    return int(waiting)


class MixedUnderUs(RuntimeError):
    """A group's sealed rows were gone when it was written: cannot happen under the tally's lock; undone."""


def _box_row(meeting_id: int, scored: ScoredBallot, comment: str | None) -> dict[str, Any]:
    return {
        "meeting_id": meeting_id,
        "group_key": scored.group,
        "answers": canonical_json(dict(scored.answers)),
        "total": format(scored.total, "f"),
        "flagged": scored.flagged,
        "comment": comment,
    }


def meetings_due(*, conn: Connection, k: int) -> list[int]:
    """Open meetings with a group due: after a restart, what the writer mixes first."""
    return list(
        conn.execute(
            select(col(Turnout.meeting_id))
            .join(Meeting, col(Meeting.id) == col(Turnout.meeting_id))
            .where(col(Meeting.state) == "open", col(Turnout.sealed) >= 2 * k)
            .order_by(col(Turnout.meeting_id))
        ).scalars()
    )


class MeetingKeyGone(RuntimeError):
    """Sealed ballots wait for a meeting whose key was erased: cannot happen while close mixes first."""


def pending_count(*, conn: Session | Connection, meeting_id: int) -> int:
    return int(
        conn.execute(select(col(Turnout.sealed)).where(col(Turnout.meeting_id) == meeting_id)).scalar() or 0
    )



# How long the scrub after a close may wait for its locks before it gives up (and logs): a busy
# server must not stall behind it.
SCRUB_LOCK_TIMEOUT_MS = 2000
# PostgreSQL keeps a dead row while any transaction on the server (in any of its databases) is older
# than the one that deleted it. Such a transaction, with an id or a snapshot older than ours:
_PG_HOLDERS = """
SELECT (SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid()
          AND (age(backend_xmin) >= age(%(mine)s::xid) OR age(backend_xid) >= age(%(mine)s::xid)))
     + (SELECT count(*) FROM pg_prepared_xacts WHERE age(transaction) >= age(%(mine)s::xid))
     + (SELECT count(*) FROM pg_replication_slots
          WHERE age(xmin) >= age(%(mine)s::xid) OR age(catalog_xmin) >= age(%(mine)s::xid))
"""
# Rewritten whole, so that the dead rows' bytes leave the files (a plain VACUUM frees their space but
# may leave the bytes until the page is reused): small tables, each a few milliseconds.
_PG_REWRITE = ("meeting_seal", "sealed_ballot")
_PG_VACUUM = ("ballot_token", "turnout", "tally")


def scrub(engine: Engine) -> bool:
    """After a close, clear what the storage engine still holds of the closed meeting's sealing.

    SQLite: freed pages are already zeroed (``secure_delete``); a TRUNCATE checkpoint moves the
    write-ahead log into the database and empties the log file, so that no sealed ballot, no
    erased key salt and no older page version stays in it. PostgreSQL: the small tables of keys
    and sealed ballots are rewritten (VACUUM FULL), so that their dead rows leave the table files;
    the ledger and the counters are vacuumed. What PostgreSQL's WAL archive, base backups and
    replicas keep is beyond a server's reach: the README says what an operator should do about them.

    False when it could not be done now (a reader in SQLite's way, or a transaction open somewhere
    on the PostgreSQL server that keeps dead rows alive): the caller tries again later.
    """
    raw = engine.raw_connection()
    try:
        if engine.dialect.name == "sqlite":
            cursor = raw.cursor()
            busy, _, _ = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            cursor.close()
            done = bool(busy == 0)
        else:
            done = _scrub_postgresql(raw.driver_connection)
    finally:
        raw.close()
    if not done:
        log.warning("the scrub after a close could not finish now; it is tried again in a minute")
    return done


def _scrub_postgresql(conn: Any) -> bool:
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            (mine,) = cursor.execute("SELECT xid(pg_current_xact_id())::text").fetchone()
            (holders,) = cursor.execute(_PG_HOLDERS, {"mine": mine}).fetchone()
            if holders:
                log.warning("%d transaction(s) open on the PostgreSQL server keep deleted rows alive", holders)
                return False
            cursor.execute(f"SET lock_timeout = {SCRUB_LOCK_TIMEOUT_MS}")
            try:
                for table in _PG_REWRITE:
                    cursor.execute(f"VACUUM FULL {table}")
                for table in _PG_VACUUM:
                    cursor.execute(f"VACUUM {table}")
            except Exception as exc:  # a lock not granted in time
                log.warning("VACUUM after a close did not run: %s", type(exc).__name__)
                return False
            finally:
                cursor.execute("RESET lock_timeout")
        return True
    finally:
        conn.autocommit = False


# Set when a scrub could not finish; the app retries it (app.main) until one does.
scrub_wanted = False
