"""seal ballots until mixed: sealed ballots, meeting keys' salts, turnout apart, keyed code hashes, no fingerprint

Revision ID: 8d2e5b1c7f30
Revises: 3c1f0d7e9a42
Create Date: 2026-12-02 08:00:00.000000

A ballot is now written sealed when its code is spent, and readable only once mixed into a group of
at least K (app.store.box). This migration makes the tables for that, drops the retry fingerprint
(a receipt), keeps codes as HMACs keyed by the server's secret instead of plain SHA-256 (so that a
copy of the database cannot be searched for codes), rebuilds the ledger without a rowid on SQLite
(the rowid was the order codes were minted in), and writes every ballot already in the box again,
in a random order and in one transaction, so that none shares a transaction id with the spend of
its code any more (PostgreSQL). Dead row versions of the old layout stay in PostgreSQL's files until
VACUUM and in its WAL archive: the README says what an operator should do about them.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.sealing import ServerKeys
from app.tokens import keyed_hash

revision: str = '8d2e5b1c7f30'
down_revision: str | None = '3c1f0d7e9a42'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _secret() -> str:
    config = op.get_context().config
    given = config.attributes.get("secret") if config is not None else None
    if given:
        return str(given)
    from app.settings import get_settings

    return get_settings().secret()


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    op.create_table(
        'sealed_ballot',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('meeting_id', sa.Integer(), nullable=False),
        sa.Column('sealed', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(['meeting_id'], ['meeting.id'], name=op.f('fk_sealed_ballot_meeting_id_meeting')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sealed_ballot')),
        sqlite_with_rowid=False,
    )
    op.create_index('ix_sealed_ballot_meeting_id', 'sealed_ballot', ['meeting_id'], unique=False)
    if not sqlite:
        # Every sealed ballot is about 2.6 KB of ciphertext: kept in the row (it fits a page), not
        # TOASTed, whose compression would only waste time on it.
        op.execute("ALTER TABLE sealed_ballot ALTER COLUMN sealed SET STORAGE PLAIN")
    op.create_table(
        'meeting_seal',
        sa.Column('meeting_id', sa.Integer(), nullable=False),
        sa.Column('salt', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(['meeting_id'], ['meeting.id'], name=op.f('fk_meeting_seal_meeting_id_meeting')),
        sa.PrimaryKeyConstraint('meeting_id', name=op.f('pk_meeting_seal')),
    )
    op.create_table(
        'turnout',
        sa.Column('meeting_id', sa.Integer(), nullable=False),
        sa.Column('ballots', sa.Integer(), nullable=False),
        sa.Column('sealed', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['meeting_id'], ['meeting.id'], name=op.f('fk_turnout_meeting_id_meeting')),
        sa.PrimaryKeyConstraint('meeting_id', name=op.f('pk_turnout')),
    )
    with op.batch_alter_table('result', schema=None) as batch_op:
        batch_op.add_column(sa.Column('breakdown', sa.Text(), nullable=True))
    # SQLite: the ledger is copied into a table without a rowid; PostgreSQL drops the column.
    with op.batch_alter_table(
        'ballot_token', schema=None, recreate="always" if sqlite else "auto",
        table_kwargs={"sqlite_with_rowid": False} if sqlite else {},
    ) as batch_op:
        batch_op.drop_column('fingerprint')

    hashes = [row[0] for row in bind.execute(sa.text("SELECT hash FROM ballot_token"))]
    if hashes:
        ledger = ServerKeys.from_secret(_secret()).ledger
        for old in hashes:
            bind.execute(
                sa.text("UPDATE ballot_token SET hash = :new WHERE hash = :old"), {"new": keyed_hash(old, ledger), "old": old}
            )

    meetings = bind.execute(sa.text("SELECT id, state FROM meeting ORDER BY id")).all()
    for meeting_id, state in meetings:
        rows = bind.execute(
            sa.text("SELECT group_key, answers, total, flagged, comment FROM ballot WHERE meeting_id = :m"),
            {"m": meeting_id},
        ).all()
        bind.execute(
            sa.text("INSERT INTO turnout (meeting_id, ballots, sealed) VALUES (:m, :n, 0)"), {"m": meeting_id, "n": len(rows)}
        )
        if state == "open":
            bind.execute(
                sa.text("INSERT INTO meeting_seal (meeting_id, salt) VALUES (:m, :salt)"),
                {"m": meeting_id, "salt": secrets.token_bytes(32)},
            )
        if rows:
            shuffled = [dict(row._mapping) for row in rows]
            random.SystemRandom().shuffle(shuffled)
            bind.execute(sa.text("DELETE FROM ballot WHERE meeting_id = :m"), {"m": meeting_id})
            bind.execute(
                sa.text(
                    "INSERT INTO ballot (id, meeting_id, group_key, answers, total, flagged, comment)"
                    " VALUES (:id, :meeting_id, :group_key, :answers, :total, :flagged, :comment)"
                ),
                [{**row, "id": secrets.token_hex(16), "meeting_id": meeting_id} for row in shuffled],
            )


def downgrade() -> None:
    # Keyed hashes cannot be turned back into plain ones, and sealed ballots need the new writer:
    # going back loses the ability to vote with the codes already printed.
    raise NotImplementedError("this migration cannot be undone: restore a backup taken before it")
