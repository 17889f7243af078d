"""The records query: one schema's rows, scoped, filtered and paged by ``id``.

Keyset pagination in ``id`` order: the integer primary key is assigned once, at insert, and an upsert
(``ON CONFLICT DO UPDATE``) never changes it, so a walk through the pages returns every row that existed before
its first page exactly once, however many rows are inserted or updated meanwhile (rows inserted during the walk
come at the end).

Ingest rows carry ``tenant_id`` and ``integration_id`` but not the owner. A page narrowed to an owner (a ``user``
principal, ``owner_id``) or an integration first reads which of the tenant's integrations qualify (an owner has at
most one per definition), then each one's next rows by its ``(integration_id, id)`` index, merged; a tenant-wide
page reads the ``(tenant_id, id)`` index, joined to ``integration`` (which hides rows of an integration that no
longer exists). Either way a page costs O(page), not O(rows skipped) (``ingest.annotations.record_indexes``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Connection, Select, Table, literal, select, tuple_, union_all

from engine.errors import NotFoundError, ValidationFailed
from engine.kit.inputs import storable
from engine.store.database import Database
from engine.store.tables import Integration
from ingest.catalog import ModelSpec, catalog
from ingest.changes import record_state
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
    _check_text(filters)
    table = _table(spec)
    after = decode_cursor(schema, cursor) if cursor else 0
    with db.engine.connect() as connection:
        dialect = connection.dialect.name
        if _narrowed(scope, filters):
            integrations = _integrations(connection, scope, filters)
            query = _per_integration(dialect, table, filters, integrations, after, limit + 1)
        else:
            query = _tenant_wide(dialect, table, scope, filters, after, limit + 1)
        rows = connection.execute(query).mappings().all() if query is not None else []
    # The change feed's serialisation, so a host's mirror built from the feed equals what this lists (timestamps
    # as the same UTC text on both databases: SQLite hands back naive datetimes).
    page = [record_state(row) for row in rows[:limit]]
    more = len(rows) > limit
    return RecordPage(data=page, next_cursor=encode_cursor(schema, page[-1]["id"]) if more else None)


def get_record(db: Database, scope: Scope, schema: str, record_id: int) -> dict[str, Any]:
    """One record; ``NotFoundError`` when there is none in the scope (another tenant's or owner's alike)."""
    table = _table(model_spec(schema))
    with db.engine.connect() as connection:
        found = connection.execute(_scoped(table, scope, record_id)).mappings().first()
    if found is None:
        raise NotFoundError(f"no {schema} record {record_id}")
    return record_state(found)


def model_spec(schema: str) -> ModelSpec:
    spec = catalog().get(schema)
    if spec is None:
        raise NotFoundError(f"no ingest model has schema {schema[:64]!r}")
    return spec


def _table(spec: ModelSpec) -> Table:
    return spec.model.__table__  # type: ignore[attr-defined,no-any-return]


def _check_text(filters: RecordFilters) -> None:
    for name in ("integration_id", "owner_id", "definition_id"):
        value = getattr(filters, name)
        if value is not None and not storable(value):  # NUL or a lone surrogate would be a database error
            raise ValidationFailed(f"{name} holds characters no record can have")


def _narrowed(scope: Scope, filters: RecordFilters) -> bool:
    return scope.owner_id is not None or filters.owner_id is not None or filters.integration_id is not None


def _integrations(connection: Connection, scope: Scope, filters: RecordFilters) -> list[str]:
    """The integrations a narrowed page reads: few (an owner has at most one per definition)."""
    integration: Table = Integration.__table__  # type: ignore[attr-defined]
    query = select(integration.c.id)
    if scope.tenant_id is not None:
        query = query.where(integration.c.tenant_id == scope.tenant_id)
    for owner in (scope.owner_id, filters.owner_id):  # a user's scope and a filter: both must hold
        if owner is not None:
            query = query.where(integration.c.owner_id == owner)
    if filters.integration_id is not None:
        query = query.where(integration.c.id == filters.integration_id)
    return list(connection.execute(query.order_by(integration.c.id)).scalars())


def _filtered(table: Table, filters: RecordFilters) -> Select[Any]:
    query = select(*[c for c in table.columns if c.name not in _HIDDEN])
    if filters.definition_id is not None:
        query = query.where(table.c.definition_id == filters.definition_id)
    if filters.updated_since is not None:
        query = query.where(table.c.updated_at >= filters.updated_since)
    return query


def _per_integration(
    dialect: str, table: Table, filters: RecordFilters, integrations: list[str], after: int, limit: int
) -> Select[Any] | None:
    """Each integration's next ``limit`` rows by ``(integration_id, id)`` (one range scan of that index each), merged.

    The tenant is not compared again on the ingest rows: ingest writes an integration's tenant with its id, and the
    integrations were read in the scope. Compared, it let PostgreSQL pick the unique constraint's index
    ``(tenant_id, integration_id, …)`` and sort all of an integration's rows for one page.
    """
    parts = [
        _after(dialect, _filtered(table, filters), table.c.integration_id, integration_id, table.c.id, after).limit(
            limit
        )
        for integration_id in integrations
    ]
    if len(parts) <= 1:
        return parts[0] if parts else None
    merged = union_all(*[select(*part.subquery().c) for part in parts]).subquery()
    return select(*merged.c).order_by(merged.c.id).limit(limit)


def _tenant_wide(
    dialect: str, table: Table, scope: Scope, filters: RecordFilters, after: int, limit: int
) -> Select[Any]:
    """A tenant's rows by ``(tenant_id, id)``, joined to their integration (which hides a deleted one's rows)."""
    integration: Table = Integration.__table__  # type: ignore[attr-defined]
    query = _filtered(table, filters).join(integration, integration.c.id == table.c.integration_id)
    if scope.tenant_id is None:  # the operator's CLI: every tenant, in id order
        return query.where(table.c.id > after).order_by(table.c.id).limit(limit)
    query = query.where(integration.c.tenant_id == scope.tenant_id)
    return _after(dialect, query, table.c.tenant_id, scope.tenant_id, table.c.id, after).limit(limit)


def _after(
    dialect: str, query: Select[Any], key: ColumnElement[Any], value: str, id_column: ColumnElement[Any], after: int
) -> Select[Any]:
    """Rows of ``key == value`` with an id past ``after``, in the order of the ``(key, id)`` index.

    PostgreSQL gets a range of that index, ``(key, id) > (value, after) AND key <= value`` ordered by ``(key, id)``:
    given ``key = value AND id > after`` ordered by ``id`` it sees the primary key deliver the same order and,
    assuming a key's rows spread evenly over the ids, walks it and filters, reading every other integration's or
    tenant's rows in between (measured: 50,000 rows read for an empty page). SQLite gets the equality, which its
    planner serves from the index as ``key = ? AND id > ?``; it seeks a row-value range on the leading column only.
    Either way a page costs O(page).
    """
    if dialect == "postgresql":
        bound = tuple_(key, id_column) > tuple_(literal(value, key.type), literal(after, id_column.type))
        return query.where(bound, key <= value).order_by(key, id_column)
    return query.where(key == value, id_column > after).order_by(id_column)


def _scoped(table: Table, scope: Scope, record_id: int) -> Select[Any]:
    """One record in the scope: its integration must be the tenant's, and the owner's for a user."""
    integration: Table = Integration.__table__  # type: ignore[attr-defined]
    columns = [c for c in table.columns if c.name not in _HIDDEN]
    query = select(*columns).join(integration, integration.c.id == table.c.integration_id)
    query = query.where(table.c.id == record_id)
    if scope.tenant_id is not None:
        query = query.where(table.c.tenant_id == scope.tenant_id, integration.c.tenant_id == scope.tenant_id)
    if scope.owner_id is not None:
        query = query.where(integration.c.owner_id == scope.owner_id)
    return query
