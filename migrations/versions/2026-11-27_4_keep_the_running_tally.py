"""keep the running tally

Revision ID: d032453af764
Revises: f82812623648
Create Date: 2026-11-27 23:55:34.352851
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'd032453af764'
down_revision: str | None = 'f82812623648'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('tally', schema=None) as batch_op:
        batch_op.add_column(sa.Column('state', sa.Text(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('tally', schema=None) as batch_op:
        batch_op.drop_column('state')

