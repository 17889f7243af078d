"""The records query: one schema's rows, scoped, filtered and paged by ``id``.

Keyset pagination in ``id`` order: the integer primary key is assigned once, at insert, and an upsert
(``ON CONFLICT DO UPDATE``) never changes it, so a walk through the pages returns every row that existed before
its first page exactly once, however many rows are inserted or updated meanwhile (rows inserted during the walk
come at the end). ``(tenant_id, id)`` and ``(integration_id, id)`` indexes (``ingest.annotations.record_indexes``)
serve each page as one range scan.

Ingest rows carry ``tenant_id`` and ``integration_id`` but not the owner: the scope joins the ``integration``
table on ``integration_id``, which also hides rows of an integration that no longer exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Select, Table, select

from engine.errors import NotFoundError, ValidationFailed
from engine.kit.inputs import storable
from engine.store.database import Database
from engine.store.tables import Integration
from ingest.catalog import ModelSpec, catalog
from ingest.records.cursor import decode_cursor, encode_cursor

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
#: Columns of a model a record leaves out: the scope it was read in.
_HIDDEN = frozenset({"tenant_id"})


@dataclass(frozen=True)
class Scope:
    """Whose records a caller may read: ``tenant_id`` (``None``: every tenant, the operator's CLI) and, for a
    ``user`` principal, the owner whose integrations they are."""

    tenant_id: str | None
    owner_id: str | None = None


@dataclass(frozen=True)
class RecordFilters:
    integration_id: str | None = None
    owner_id: str | None = None
    definition_id: str | None = None
    #: Rows whose ``updated_at`` is at or after this instant.
    updated_since: datetime | None = None


class RecordPage(BaseModel):
    """A page as the API answers it and ``tether records list --json`` prints it."""

    data: list[dict[str, Any]] = Field(
        description="Records in id order: every field the schema's model declares (its ingest fields, id, "
        "integration_id, definition_id, created_at, updated_at), tenant_id left out."
    )
    #: Pass as ``cursor`` for the next page; ``None`` on the last one.
    next_cursor: str | None = Field(None, description="``cursor`` of the next page; null on the last one")


def list_records(
    db: Database,
    scope: Scope,
    schema: str,
    filters: RecordFilters = RecordFilters(),
    *,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> RecordPage:
    """One page of ``schema``'s records in ``id`` order, after ``cursor``."""
    spec = model_spec(schema)
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(f"limit must be between 1 and {MAX_LIMIT}")
    table = _table(spec)
    query = _scoped(table, scope, filters)
    if cursor:
        query = query.where(table.c.id > decode_cursor(schema, cursor))
    with db.engine.connect() as connection:
        rows = connection.execute(query.order_by(table.c.id).limit(limit + 1)).mappings().all()
    page = [dict(row) for row in rows[:limit]]
    more = len(rows) > limit
    return RecordPage(data=page, next_cursor=encode_cursor(schema, page[-1]["id"]) if more else None)


def get_record(db: Database, scope: Scope, schema: str, record_id: int) -> dict[str, Any]:
    """One record; ``NotFoundError`` when there is none in the scope (another tenant's or owner's alike)."""
    table = _table(model_spec(schema))
    with db.engine.connect() as connection:
        row = connection.execute(_scoped(table, scope, RecordFilters()).where(table.c.id == record_id)).mappings()
        found = row.first()
    if found is None:
        raise NotFoundError(f"no {schema} record {record_id}")
    return dict(found)


def model_spec(schema: str) -> ModelSpec:
    spec = catalog().get(schema)
    if spec is None:
        raise NotFoundError(f"no ingest model has schema {schema[:64]!r}")
    return spec


def _table(spec: ModelSpec) -> Table:
    return spec.model.__table__  # type: ignore[attr-defined,no-any-return]


def _scoped(table: Table, scope: Scope, filters: RecordFilters) -> Select[Any]:
    for name in ("integration_id", "owner_id", "definition_id"):
        value = getattr(filters, name)
        if value is not None and not storable(value):  # NUL or a lone surrogate would be a database error
            raise ValidationFailed(f"{name} holds characters no record can have")
    integration: Table = Integration.__table__  # type: ignore[attr-defined]
    columns = [c for c in table.columns if c.name not in _HIDDEN]
    query = select(*columns).join(integration, integration.c.id == table.c.integration_id)
    if scope.tenant_id is not None:
        query = query.where(table.c.tenant_id == scope.tenant_id, integration.c.tenant_id == scope.tenant_id)
    for owner in (scope.owner_id, filters.owner_id):
        if owner is not None:
            query = query.where(integration.c.owner_id == owner)
    if filters.integration_id is not None:
        query = query.where(table.c.integration_id == filters.integration_id)
    if filters.definition_id is not None:
        query = query.where(table.c.definition_id == filters.definition_id)
    if filters.updated_since is not None:
        query = query.where(table.c.updated_at >= filters.updated_since)
    return query
