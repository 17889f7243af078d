"""File: a file or a document in an external store (a Google Drive file, a Notion page).

Metadata only (name, kind, owners, times, link, state); contents are never fetched.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, UniqueConstraint
from sqlmodel import Field, SQLModel

from ingest.annotations import IngestOptions, from_context, mapped, record_indexes, upsert_key


class File(SQLModel, table=True):
    __tablename__ = "file"
    __table_args__ = (UniqueConstraint("tenant_id", "integration_id", "external_id"), *record_indexes("file"))
    __ingest__: ClassVar[IngestOptions] = IngestOptions(schema="file")

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = from_context("tenant_id")
    integration_id: str = from_context("integration_id")
    definition_id: str = from_context("definition_id")
    #: The provider's file or page ID: the upsert and lookup key.
    external_id: str = upsert_key(lookup=True)
    #: A file's name or a page's title (a Notion page may have none).
    name: str | None = mapped(None)
    #: The provider's media type (Drive ``mimeType``, ``application/vnd.google-apps.folder`` for a folder).
    mime_type: str | None = mapped(None)
    #: A coarse kind across providers: ``file``, ``folder``, ``document``, ``page``, ``database``.
    kind: str | None = mapped(None)
    #: Owners as the provider names them (email addresses or user IDs).
    owners: list[Any] | None = mapped(None, sa_type=JSON)
    size_bytes: int | None = mapped(None, sa_type=BigInteger)
    source_created_at: datetime | None = mapped(None)
    source_modified_at: datetime | None = mapped(None)
    url: str | None = mapped(None)
    #: In the trash (Drive) or archived (Notion).
    trashed: bool | None = mapped(None)
    #: The containing folder, page or database.
    parent_id: str | None = mapped(None)
    attributes: dict[str, Any] | None = mapped(None, sa_type=JSON)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
