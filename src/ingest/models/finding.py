"""Finding: a security finding (a misconfiguration, a failed control, an alert) reported by a scanner."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, UniqueConstraint
from sqlmodel import Field, SQLModel

from ingest.annotations import IngestOptions, from_context, mapped, record_indexes, upsert_key


class Finding(SQLModel, table=True):
    __tablename__ = "finding"
    __table_args__ = (UniqueConstraint("tenant_id", "integration_id", "external_id"), *record_indexes("finding"))
    __ingest__: ClassVar[IngestOptions] = IngestOptions(schema="finding")

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = from_context("tenant_id")
    integration_id: str = from_context("integration_id")
    definition_id: str = from_context("definition_id")
    external_id: str = upsert_key(lookup=True)
    title: str = mapped()
    description: str | None = mapped(None)
    #: ``critical``, ``high``, ``medium``, ``low``, ``informational``.
    severity: str | None = mapped(None)
    status: str | None = mapped(None)
    category: str | None = mapped(None)
    #: The scanner that reported it (``security_hub``, ``scc``…).
    source: str | None = mapped(None)
    #: The affected resource, as the provider identifies it (joins to ``asset.source_identifier``).
    resource_identifier: str | None = mapped(None)
    recommendation: str | None = mapped(None)
    url: str | None = mapped(None)
    first_seen_at: datetime | None = mapped(None)
    last_seen_at: datetime | None = mapped(None)
    attributes: dict[str, Any] | None = mapped(None, sa_type=JSON)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
