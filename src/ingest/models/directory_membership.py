"""Directory membership: an account's membership of a group, linked through both models' lookup keys."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, UniqueConstraint
from sqlmodel import Field, SQLModel

from ingest.annotations import IngestOptions, from_context, mapped, record_indexes, reference


class DirectoryMembership(SQLModel, table=True):
    __tablename__ = "directory_membership"
    __table_args__ = (
        UniqueConstraint("tenant_id", "integration_id", "account_external_id", "group_external_id"),
        *record_indexes("directory_membership"),
    )
    __ingest__: ClassVar[IngestOptions] = IngestOptions(schema="directory_membership")

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = from_context("tenant_id")
    integration_id: str = from_context("integration_id")
    definition_id: str = from_context("definition_id")
    #: The member's ``directory_account.external_id``; resolved into ``account_id`` in the same integration.
    account_external_id: str = reference("directory_account", "account_id", upsert=True)
    #: The group's ``directory_group.external_id``; resolved into ``group_id`` in the same integration.
    group_external_id: str = reference("directory_group", "group_id", upsert=True)
    #: ``member``, ``owner``, ``manager``…
    role: str | None = mapped(None)
    attributes: dict[str, Any] | None = mapped(None, sa_type=JSON)
    #: Filled by persistence, never by a mapping.
    account_id: int = Field(foreign_key="directory_account.id", ondelete="CASCADE", index=True)
    group_id: int = Field(foreign_key="directory_group.id", ondelete="CASCADE", index=True)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
