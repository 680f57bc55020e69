"""remember past reviews: when a unit came into the service, and the review years recorded from before

Revision ID: 8d2e51c0b7a4
Revises: 3c1f0d7e9a42
Create Date: 2026-12-02 06:30:00.000000
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '8d2e51c0b7a4'
down_revision: str | None = '3c1f0d7e9a42'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('unit', schema=None) as batch_op:
        batch_op.add_column(sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    # Units that exist already are taken as known from now: their past years can be recorded.
    now = sa.bindparam("now", dt.datetime.now(dt.UTC), type_=sqlmodel.sql.sqltypes.UTCDateTime())
    op.execute(sa.text("UPDATE unit SET created_at = :now").bindparams(now))
    with op.batch_alter_table('unit', schema=None) as batch_op:
        batch_op.alter_column('created_at', existing_type=sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False)
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
