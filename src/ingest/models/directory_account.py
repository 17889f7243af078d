"""Directory account: a user (or service) account in an external directory (Google Workspace, Okta, GitHub org)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, UniqueConstraint
from sqlmodel import Field, SQLModel

from ingest.annotations import IngestOptions, from_context, mapped, record_indexes, upsert_key


class DirectoryAccount(SQLModel, table=True):
    __tablename__ = "directory_account"
    __table_args__ = (
        UniqueConstraint("tenant_id", "integration_id", "external_id"),
        *record_indexes("directory_account"),
    )
    __ingest__: ClassVar[IngestOptions] = IngestOptions(schema="directory_account")

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = from_context("tenant_id")
    integration_id: str = from_context("integration_id")
    definition_id: str = from_context("definition_id")
    #: The directory's own stable account ID: the upsert key and the key memberships reference.
    external_id: str = upsert_key(lookup=True)
    email: str | None = mapped(None)
    display_name: str | None = mapped(None)
    given_name: str | None = mapped(None)
    family_name: str | None = mapped(None)
    username: str | None = mapped(None)
    #: ``user``, ``service``, ``bot``…
    account_type: str | None = mapped(None)
    #: ``active``, ``suspended``, ``deprovisioned``…
    status: str | None = mapped(None)
    is_admin: bool | None = mapped(None)
    mfa_enabled: bool | None = mapped(None)
    last_login_at: datetime | None = mapped(None)
    source_created_at: datetime | None = mapped(None)
    attributes: dict[str, Any] | None = mapped(None, sa_type=JSON)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
