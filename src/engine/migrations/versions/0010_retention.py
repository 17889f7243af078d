"""retention: change_counter.pruned_through

Revision ID: 0010_retention
Revises: 0009_run_checkpoint
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_retention"
down_revision: str | None = "0009_run_checkpoint"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("change_counter", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pruned_through", sa.BigInteger(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("change_counter", schema=None) as batch_op:
        batch_op.drop_column("pruned_through")
