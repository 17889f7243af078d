"""Asset: something an organisation owns in an external system (a repository, a host, a zone)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, UniqueConstraint
from sqlmodel import Field, SQLModel

from ingest.annotations import IngestOptions, from_context, mapped, record_indexes, upsert_key


class Asset(SQLModel, table=True):
    __tablename__ = "asset"
    __table_args__ = (UniqueConstraint("tenant_id", "integration_id", "source_identifier"), *record_indexes("asset"))
    __ingest__: ClassVar[IngestOptions] = IngestOptions(schema="asset")

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = from_context("tenant_id")
    integration_id: str = from_context("integration_id")
    definition_id: str = from_context("definition_id")
    #: The provider's own stable identifier (a repository node ID): the upsert and lookup key.
    source_identifier: str = upsert_key(lookup=True)
    name: str = mapped()
    asset_type: str = mapped()
    description: str | None = mapped(None)
    url: str | None = mapped(None)
    owner: str | None = mapped(None)
    visibility: str | None = mapped(None)
    archived: bool | None = mapped(None)
    source_updated_at: datetime | None = mapped(None)
    attributes: dict[str, Any] | None = mapped(None, sa_type=JSON)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
