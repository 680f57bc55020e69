"""number results in the order they were frozen: the results export pages by this number, not by a clock

Revision ID: 9e4b71c2d5a8
Revises: 8d2e51c0b7a4
Create Date: 2026-12-02 06:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '9e4b71c2d5a8'
down_revision: str | None = '8d2e51c0b7a4'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('result', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seq', sa.BigInteger(), nullable=True))
    # Results frozen before keep the order the export gave them: by close time, then meeting, then version.
    op.execute(
        "UPDATE result SET seq = (SELECT count(*) FROM result AS earlier"
        " WHERE (earlier.created_at, earlier.meeting_id, earlier.version)"
        " <= (result.created_at, result.meeting_id, result.version))"
    )
    with op.batch_alter_table('result', schema=None) as batch_op:
        batch_op.alter_column('seq', existing_type=sa.BigInteger(), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_result_seq'), ['seq'])
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('CREATE SEQUENCE result_seq')
        op.execute("SELECT setval('result_seq', (SELECT coalesce(max(seq), 0) + 1 FROM result), false)")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP SEQUENCE result_seq')
    with op.batch_alter_table('result', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_result_seq'), type_='unique')
        batch_op.drop_column('seq')
