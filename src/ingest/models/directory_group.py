"""Directory group: a group, team or role in an external directory."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, UniqueConstraint
from sqlmodel import Field, SQLModel

from ingest.annotations import IngestOptions, from_context, mapped, record_indexes, upsert_key


class DirectoryGroup(SQLModel, table=True):
    __tablename__ = "directory_group"
    __table_args__ = (
        UniqueConstraint("tenant_id", "integration_id", "external_id"),
        *record_indexes("directory_group"),
    )
    __ingest__: ClassVar[IngestOptions] = IngestOptions(schema="directory_group")

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = from_context("tenant_id")
    integration_id: str = from_context("integration_id")
    definition_id: str = from_context("definition_id")
    #: The directory's own stable group ID: the upsert key and the key memberships reference.
    external_id: str = upsert_key(lookup=True)
    name: str = mapped()
    email: str | None = mapped(None)
    description: str | None = mapped(None)
    #: ``team``, ``security``, ``distribution``, ``role``…
    group_type: str | None = mapped(None)
    member_count: int | None = mapped(None)
    attributes: dict[str, Any] | None = mapped(None, sa_type=JSON)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
