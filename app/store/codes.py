"""Single-use ballot codes: minting (hashes only), voiding, counting."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, insert, select, update
from sqlmodel import Session, col

from app import tokens as tokens_mod
from app.errors import Conflict, Invalid
from app.figures import group_specs
from app.sealing import ServerKeys
from app.store.base import MAX_MINT, audit
from app.store.meetings import get_meeting
from app.tables import BallotToken


def mint_tokens(
    *, session: Session, actor: str, meeting_id: int, count: int, group: str | None, keys: ServerKeys
) -> list[tuple[str, str | None]]:
    """Mint single-use codes; only their hashes are kept, so they are shown this once."""
    return mint_token_batches(
        session=session, actor=actor, meeting_id=meeting_id, batches=[(group, count)], keys=keys
    )


def mint_token_batches(
    *, session: Session, actor: str, meeting_id: int, batches: Sequence[tuple[str | None, int]], keys: ServerKeys
) -> list[tuple[str, str | None]]:
    """Codes for several rater groups in one transaction: one printing job, all of it or none."""
    meeting = get_meeting(session=session, meeting_id=meeting_id)
    if meeting.state in ("closed", "voided"):
        raise Conflict("meeting_tokens_closed", state=meeting.state)
    if not batches or not all(1 <= count <= MAX_MINT for _, count in batches) or (
        sum(count for _, count in batches) > MAX_MINT
    ):
        raise Invalid("meeting_token_count", max=MAX_MINT)
    specs = group_specs(meeting)
    for group, _ in batches:
        if group is not None and group not in {spec.key for spec in specs}:
            raise Invalid("meeting_unknown_group", group=group)
        if group is None and any(spec.weight for spec in specs):
            raise Invalid("meeting_group_required")
    minted = [(tokens_mod.mint_code(), group) for group, count in batches for _ in range(count)]
    session.execute(
        insert(BallotToken),
        [
            {
                "hash": keys.code_hash(code),
                "meeting_id": meeting_id,
                "group_key": group,
                "used": False,
                "void": False,
            }
            for code, group in minted
        ],
    )
    for group, count in batches:
        audit(
            session=session,
            actor=actor,
            action="tokens.mint",
            meeting_id=meeting_id,
            detail={"count": count, "group": group},
        )
    session.commit()
    return minted


def void_unused_tokens(*, session: Session, actor: str, meeting_id: int, group: str | None = None) -> int:
    """Void every unspent code of a meeting (or of one group): for a lost or misprinted sheet."""
    get_meeting(session=session, meeting_id=meeting_id)
    query = update(BallotToken).where(
        col(BallotToken.meeting_id) == meeting_id, col(BallotToken.used).is_(False), col(BallotToken.void).is_(False)
    )
    if group is not None:
        query = query.where(col(BallotToken.group_key) == group)
    count = session.execute(query.values(void=True)).rowcount  # type: ignore[attr-defined]
    audit(
        session=session,
        actor=actor,
        action="tokens.void",
        meeting_id=meeting_id,
        detail={"count": count, "group": group},
    )
    session.commit()
    return int(count)


def token_counts(*, session: Session, meeting_id: int) -> dict[str | None, dict[str, int]]:
    """Per rater group: codes issued (not void), spent, and void. Counts only: nothing links to ballots."""
    rows = session.execute(
        select(col(BallotToken.group_key), col(BallotToken.used), col(BallotToken.void), func.count())
        .where(col(BallotToken.meeting_id) == meeting_id)
        .group_by(col(BallotToken.group_key), col(BallotToken.used), col(BallotToken.void))
    ).all()
    counts: dict[str | None, dict[str, int]] = {}
    for group, used, void, n in rows:
        entry = counts.setdefault(group, {"issued": 0, "spent": 0, "void": 0})
        if void:
            entry["void"] += n
        else:
            entry["issued"] += n
            entry["spent"] += n if used else 0
    return counts
