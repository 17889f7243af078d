"""Ticket: an issue in a host app's help desk, the host's own model (not one of Tether's)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, UniqueConstraint
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from ingest.annotations import IngestOptions, from_context, mapped, record_indexes, upsert_key


class HostModel(SQLModel, registry=registry()):
    """The host's base: its own registry, hence its own ``MetaData`` (not ``SQLModel.metadata``, Tether's)."""


class Ticket(HostModel, table=True):
    __tablename__ = "host_ticket"
    __table_args__ = (UniqueConstraint("tenant_id", "integration_id", "external_id"), *record_indexes("host_ticket"))
    __ingest__: ClassVar[IngestOptions] = IngestOptions(schema="ticket")

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = from_context("tenant_id")
    integration_id: str = from_context("integration_id")
    definition_id: str = from_context("definition_id")
    external_id: str = upsert_key(lookup=True)
    title: str = mapped()
    status: str | None = mapped(None)
    priority: int | None = mapped(None)
    requester_email: str | None = mapped(None)
    opened_at: datetime | None = mapped(None)
    attributes: dict[str, Any] | None = mapped(None, sa_type=JSON)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
