"""A host model module whose model takes the built-in ``asset`` schema: start-up must refuse it."""

from __future__ import annotations

from typing import ClassVar

from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from ingest.annotations import IngestOptions, from_context, upsert_key


class ClashBase(SQLModel, registry=registry()):
    pass


class MyAsset(ClashBase, table=True):
    __tablename__ = "host_my_asset"
    __ingest__: ClassVar[IngestOptions] = IngestOptions(schema="asset")

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = from_context("tenant_id")
    integration_id: str = from_context("integration_id")
    definition_id: str = from_context("definition_id")
    source_identifier: str = upsert_key()
    updated_at: str | None = None
