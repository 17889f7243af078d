"""change feed: record_change and its per-tenant counter

Revision ID: 0006_change_feed
Revises: 0005_sandbox
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0006_change_feed"
down_revision: str | None = "0005_sandbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "change_counter",
        sa.Column("tenant_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id"),
    )
    op.create_table(
        "record_change",
        sa.Column("tenant_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("schema_name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("record_id", sa.BigInteger(), nullable=False),
        sa.Column("integration_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("op", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("record", sa.JSON(), nullable=True),
        sa.Column("changed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "seq"),
    )
    with op.batch_alter_table("record_change", schema=None) as batch_op:
        batch_op.create_index(
            "ix_record_change_tenant_integration_seq", ["tenant_id", "integration_id", "seq"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("record_change", schema=None) as batch_op:
        batch_op.drop_index("ix_record_change_tenant_integration_seq")
    op.drop_table("record_change")
    op.drop_table("change_counter")
