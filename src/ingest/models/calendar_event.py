"""Calendar event: a meeting or event from an external calendar."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, UniqueConstraint
from sqlmodel import Field, SQLModel

from ingest.annotations import IngestOptions, from_context, mapped, record_indexes, upsert_key


class CalendarEvent(SQLModel, table=True):
    __tablename__ = "calendar_event"
    __table_args__ = (UniqueConstraint("tenant_id", "integration_id", "external_id"), *record_indexes("calendar_event"))
    __ingest__: ClassVar[IngestOptions] = IngestOptions(schema="calendar_event")

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = from_context("tenant_id")
    integration_id: str = from_context("integration_id")
    definition_id: str = from_context("definition_id")
    external_id: str = upsert_key(lookup=True)
    title: str = mapped()
    description: str | None = mapped(None)
    start_at: datetime | None = mapped(None)
    end_at: datetime | None = mapped(None)
    all_day: bool | None = mapped(None)
    location: str | None = mapped(None)
    organizer_email: str | None = mapped(None)
    status: str | None = mapped(None)
    url: str | None = mapped(None)
    attendees: list[Any] | None = mapped(None, sa_type=JSON)
    attributes: dict[str, Any] | None = mapped(None, sa_type=JSON)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
