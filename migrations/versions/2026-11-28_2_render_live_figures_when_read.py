"""render live figures when read: the writer keeps the counts and trimmed sums at each step of K

Revision ID: 3c1f0d7e9a42
Revises: 6579b20982fe
Create Date: 2026-11-28 02:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '3c1f0d7e9a42'
down_revision: str | None = '6579b20982fe'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Rows of open meetings keep the figures the old writer published until their next step of K.
    with op.batch_alter_table('tally', schema=None) as batch_op:
        batch_op.add_column(sa.Column('published_sums', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tally', schema=None) as batch_op:
        batch_op.drop_column('published_sums')
