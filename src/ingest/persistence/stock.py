"""The stock persistence: a batched ``INSERT … ON CONFLICT (context, upsert keys) DO UPDATE``.

When the batch records changes (``PersistBatch.changes`` is a list), the update applies only to a row some value of
which differs (``WHERE old IS DISTINCT FROM new``, JSON compared as ``jsonb`` on PostgreSQL) and the statement
returns the rows it inserted or changed: those, with their full new state, become the batch's ``upsert`` changes.
A no-op upsert therefore writes nothing (its ``updated_at`` stays) and adds nothing to the change feed.

One statement per batch (an executemany of one cached, compiled statement), inside a savepoint. Rows are scoped by
the context fields, which lead every unique constraint, so two integrations never touch each other's rows.
References (lookup keys of other models) are resolved with one query per batch per target model. When the batch
statement fails (a value the database refuses), the batch is retried row by row, each in its own savepoint, and
only the rows the database refuses are rejected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, Table, cast, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.types import JSON

from ingest.catalog import ModelSpec, catalog
from ingest.changes import Change, upserted

#: Rows per statement (well under both databases' bound-parameter limits for these tables).
CHUNK = 1000


@dataclass(frozen=True)
class Record:
    """One validated record: its position in the run and its column values (context fields included)."""

    position: int
    values: dict[str, Any]


@dataclass(frozen=True)
class PersistRejection:
    position: int
    reason_code: str
    reason: str


@dataclass
class PersistBatch:
    """What a ``persist`` function receives: one schema's records of one integration, in one transaction."""

    connection: Connection
    spec: ModelSpec
    tenant_id: str
    integration_id: str
    definition_id: str
    records: Sequence[Record]
    #: Where the batch's writes are reported for the change feed; ``None``: the pipeline records no changes.
    changes: list[Change] | None = field(default=None)


def stock_upsert(batch: PersistBatch) -> list[PersistRejection]:
    """Upsert every record; returns the ones refused (the rest are persisted)."""
    rejections: list[PersistRejection] = []
    records = list(batch.records)
    if batch.spec.references:
        records, rejections = resolve_references(batch, records)
    if not records:
        return rejections
    recording = batch.changes is not None
    statement = upsert_statement(batch.connection.dialect.name, batch.spec.schema, recording)
    now = datetime.now(UTC)
    keyed: dict[tuple[Any, ...], tuple[int, dict[str, Any]]] = {}
    key_columns = ["tenant_id", "integration_id", *batch.spec.upsert]
    for record in records:
        row = {**record.values, "created_at": now, "updated_at": now}
        # The same key twice in one statement is an error on PostgreSQL; the last occurrence wins, as it would
        # have across two statements.
        keyed[tuple(row[k] for k in key_columns)] = (record.position, row)
    rows = list(keyed.values())
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        try:
            with batch.connection.begin_nested():
                result = batch.connection.execute(statement, [row for _, row in chunk])
                written = result.mappings().all() if recording else []
        except SQLAlchemyError:
            refused, written = _one_by_one(batch.connection, statement, chunk, recording)
            rejections.extend(refused)
        if batch.changes is not None:
            batch.changes.extend(upserted(batch.spec.schema, batch.integration_id, written))
    return rejections


def _one_by_one(
    connection: Connection, statement: Any, rows: list[tuple[int, dict[str, Any]]], recording: bool
) -> tuple[list[PersistRejection], list[Any]]:
    refused: list[PersistRejection] = []
    written: list[Any] = []
    for position, row in rows:
        try:
            with connection.begin_nested():
                result = connection.execute(statement, [row])
                if recording:
                    written.extend(result.mappings().all())
        except SQLAlchemyError as exc:
            refused.append(PersistRejection(position, "persist_failed", _database_reason(exc)))
    return refused, written


def _database_reason(exc: SQLAlchemyError) -> str:
    # The driver's message can quote the refused value (payload data); keep only the error class and first line.
    original = getattr(exc, "orig", None) or exc
    first_line = str(original).strip().splitlines()[0] if str(original).strip() else ""
    return f"the database refused the row: {type(original).__name__}: {first_line}"[:500]


@cache
def upsert_statement(dialect: str, schema: str, returning: bool = False) -> Any:
    """``INSERT … ON CONFLICT (tenant_id, integration_id, upsert keys) DO UPDATE`` for one model, built once.

    ``returning``: update only rows that differ, and return every row inserted or updated (the change feed)."""
    spec = catalog()[schema]
    table: Table = spec.model.__table__  # type: ignore[attr-defined]
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table)
    conflict = ["tenant_id", "integration_id", *spec.upsert]
    keep = {"id", "created_at", *conflict}
    updates = {c.name: statement.excluded[c.name] for c in table.columns if c.name not in keep}
    if not returning:
        return statement.on_conflict_do_update(index_elements=conflict, set_=updates)
    compared = [name for name in updates if name != "updated_at"]
    differs = or_(*(_distinct(dialect, table.c[name], statement.excluded[name]) for name in compared))
    return statement.on_conflict_do_update(index_elements=conflict, set_=updates, where=differs).returning(
        *table.columns
    )


def _distinct(dialect: str, old: Any, new: Any) -> Any:
    # PostgreSQL's json type has no equality operator; jsonb compares by value.
    if dialect == "postgresql" and isinstance(old.type, JSON):
        return cast(old, postgresql.JSONB).is_distinct_from(cast(new, postgresql.JSONB))
    return old.is_distinct_from(new)


def resolve_references(batch: PersistBatch, records: list[Record]) -> tuple[list[Record], list[PersistRejection]]:
    """Fill each reference's ID column, one query per target model; records whose target is missing are refused."""
    models = catalog()
    ids: dict[str, dict[Any, int]] = {}
    for ref in batch.spec.references:
        target = models[ref.target]
        key = target.lookup[0]
        table: Table = target.model.__table__  # type: ignore[attr-defined]
        wanted = {r.values.get(ref.field) for r in records} - {None}
        found: dict[Any, int] = {}
        values = sorted(wanted, key=str)
        for start in range(0, len(values), CHUNK):
            query = select(table.c[key], table.c.id).where(
                table.c.tenant_id == batch.tenant_id,
                table.c.integration_id == batch.integration_id,
                table.c[key].in_(values[start : start + CHUNK]),
            )
            found.update({k: i for k, i in batch.connection.execute(query)})
        ids[ref.field] = found
    kept: list[Record] = []
    refused: list[PersistRejection] = []
    for record in records:
        values = dict(record.values)
        missing = None
        for ref in batch.spec.references:
            target_id = ids[ref.field].get(values.get(ref.field))
            if target_id is None:
                missing = ref
                break
            values[ref.into] = target_id
        if missing is None:
            kept.append(Record(record.position, values))
        else:
            refused.append(
                PersistRejection(
                    record.position,
                    "lookup_unresolved",
                    f"{missing.field} matches no {missing.target} of this integration",
                )
            )
    return kept, refused
