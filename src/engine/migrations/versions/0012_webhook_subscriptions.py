"""webhook subscriptions and unrouted deliveries

Revision ID: 0012_webhook_subscriptions
Revises: 0011_tasks
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0012_webhook_subscriptions"
down_revision: str | None = "0011_tasks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "unrouted_delivery",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("definition_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("webhook", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("received_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("unrouted_delivery", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_unrouted_delivery_definition_id"), ["definition_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_unrouted_delivery_received_at"), ["received_at"], unique=False)

    op.create_table(
        "webhook_subscription",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("endpoint_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("integration_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("provider_id", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("renew_requested", sa.Boolean(), nullable=False),
        sa.Column("fence", sa.Integer(), nullable=False),
        sa.Column("error_code", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["endpoint_id"], ["webhook_endpoint.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["integration_id"], ["integration.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("endpoint_id", "key"),
    )
    with op.batch_alter_table("webhook_subscription", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_webhook_subscription_endpoint_id"), ["endpoint_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_webhook_subscription_integration_id"), ["integration_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_webhook_subscription_provider_id"), ["provider_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("webhook_subscription", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_subscription_provider_id"))
        batch_op.drop_index(batch_op.f("ix_webhook_subscription_integration_id"))
        batch_op.drop_index(batch_op.f("ix_webhook_subscription_endpoint_id"))
    op.drop_table("webhook_subscription")
    with op.batch_alter_table("unrouted_delivery", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_unrouted_delivery_received_at"))
        batch_op.drop_index(batch_op.f("ix_unrouted_delivery_definition_id"))
    op.drop_table("unrouted_delivery")
