"""remember past reviews: when a unit came into the service, and the review years recorded from before

Revision ID: 8d2e51c0b7a4
Revises: 8d2e5b1c7f30
Create Date: 2026-12-02 06:30:00.000000
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '8d2e51c0b7a4'
down_revision: str | None = '8d2e5b1c7f30'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Units that exist already are taken as known from now: their past years can be recorded.
    now = dt.datetime.now(dt.UTC)
    if op.get_bind().dialect.name == "sqlite":
        # SQLite adds a NOT NULL column in place when it has a default. Copying the table instead (a
        # batch alter) would drop `unit`, which meetings' foreign keys refuse while units have meetings.
        stamp = now.replace(tzinfo=None).isoformat(sep=" ")
        op.add_column('unit', sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False,
                                        server_default=sa.text(f"'{stamp}'")))
    else:
        op.add_column('unit', sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        stamped = sa.bindparam("now", now, type_=sqlmodel.sql.sqltypes.UTCDateTime())
        op.execute(sa.text("UPDATE unit SET created_at = :now").bindparams(stamped))
        op.alter_column('unit', 'created_at', existing_type=sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False)
    op.create_table(
        'unit_review_year',
        sa.Column('unit_id', sa.Integer(), nullable=False),
        sa.Column('year', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['unit_id'], ['unit.id'], name=op.f('fk_unit_review_year_unit_id_unit')),
        sa.PrimaryKeyConstraint('unit_id', 'year', name=op.f('pk_unit_review_year')),
    )


def downgrade() -> None:
    op.drop_table('unit_review_year')
    with op.batch_alter_table('unit', schema=None) as batch_op:
        batch_op.drop_column('created_at')
