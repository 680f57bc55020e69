"""count live codes from an index

Revision ID: 6579b20982fe
Revises: d032453af764
Create Date: 2026-11-28 00:27:12.194553
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '6579b20982fe'
down_revision: str | None = 'd032453af764'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('ballot_token', schema=None) as batch_op:
        batch_op.create_index('ix_ballot_token_meeting_void', ['meeting_id', 'void'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('ballot_token', schema=None) as batch_op:
        batch_op.drop_index('ix_ballot_token_meeting_void')

