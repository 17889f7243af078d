"""records API: keyset indexes (tenant_id, id) and (integration_id, id) on every ingest table

They replace the single-column tenant_id and integration_id indexes, which they cover as prefixes: a page of
``GET /v1/records/{schema}`` (``id`` order within a tenant or an integration) is then one index range scan.

Revision ID: 0004_records
Revises: 0003
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004_records"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (
    "asset",
    "calendar_event",
    "contact",
    "directory_account",
    "directory_group",
    "directory_membership",
    "finding",
    "vulnerability",
)
COLUMNS = ("tenant_id", "integration_id")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in COLUMNS:
                batch_op.create_index(f"ix_{table}_{column}_id", [column, "id"], unique=False)
                batch_op.drop_index(f"ix_{table}_{column}")


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in COLUMNS:
                batch_op.create_index(f"ix_{table}_{column}", [column], unique=False)
                batch_op.drop_index(f"ix_{table}_{column}_id")
