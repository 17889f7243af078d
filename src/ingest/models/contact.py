"""Contact: a person outside the organisation (a vendor, customer or partner contact) from a CRM or address book."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, UniqueConstraint
from sqlmodel import Field, SQLModel

from ingest.annotations import IngestOptions, from_context, mapped, record_indexes, upsert_key


class Contact(SQLModel, table=True):
    __tablename__ = "contact"
    __table_args__ = (UniqueConstraint("tenant_id", "integration_id", "external_id"), *record_indexes("contact"))
    __ingest__: ClassVar[IngestOptions] = IngestOptions(schema="contact")

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = from_context("tenant_id")
    integration_id: str = from_context("integration_id")
    definition_id: str = from_context("definition_id")
    external_id: str = upsert_key(lookup=True)
    full_name: str | None = mapped(None)
    email: str | None = mapped(None, lookup=True)
    phone: str | None = mapped(None)
    company: str | None = mapped(None)
    title: str | None = mapped(None)
    address: str | None = mapped(None)
    attributes: dict[str, Any] | None = mapped(None, sa_type=JSON)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
