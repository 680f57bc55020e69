"""freeze what a result says: the unit as it stood at close, the rules it was counted with, the digest's format

Revision ID: 5b7c3e9a1d42
Revises: c9f8ba810a26
Create Date: 2026-12-02 12:30:00.000000

Results frozen before keep digest format 1 (the ballots alone) and take the unit as it stands now:
nothing older is known. Meeting states gain "voided" (作废); the column is long enough already.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '5b7c3e9a1d42'
down_revision: str | None = 'c9f8ba810a26'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UNIT = "SELECT {column} FROM unit JOIN meeting ON meeting.unit_id = unit.id WHERE meeting.id = result.meeting_id"


def upgrade() -> None:
    with op.batch_alter_table('result', schema=None) as batch_op:
        batch_op.add_column(sa.Column('unit_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
        batch_op.add_column(sa.Column('unit_name', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True))
        batch_op.add_column(sa.Column('category', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
        batch_op.add_column(sa.Column('rules', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('digest_format', sa.Integer(), nullable=True))
    op.execute(
        "UPDATE result SET"
        f" unit_code = ({_UNIT.format(column='unit.code')}),"
        f" unit_name = ({_UNIT.format(column='unit.name')}),"
        f" category = ({_UNIT.format(column='unit.category_key')}),"
        " digest_format = 1"
    )
    with op.batch_alter_table('result', schema=None) as batch_op:
        batch_op.alter_column('unit_code', existing_type=sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False)
        batch_op.alter_column('unit_name', existing_type=sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False)
        batch_op.alter_column('category', existing_type=sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False)
        batch_op.alter_column('digest_format', existing_type=sa.Integer(), nullable=False)
        batch_op.create_index(batch_op.f('ix_result_unit_code'), ['unit_code'], unique=False)


def downgrade() -> None:
    op.execute("UPDATE meeting SET state = 'closed' WHERE state = 'voided' AND id IN (SELECT meeting_id FROM result)")
    op.execute("UPDATE meeting SET state = 'draft' WHERE state = 'voided'")
    with op.batch_alter_table('result', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_result_unit_code'))
        batch_op.drop_column('digest_format')
        batch_op.drop_column('rules')
        batch_op.drop_column('category')
        batch_op.drop_column('unit_name')
        batch_op.drop_column('unit_code')
