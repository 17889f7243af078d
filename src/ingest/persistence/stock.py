"""The stock persistence: a batched ``INSERT … ON CONFLICT (context, upsert keys) DO UPDATE``.

One statement per batch (an executemany of one cached, compiled statement), inside a savepoint. Rows are scoped by
the context fields, which lead every unique constraint, so two integrations never touch each other's rows.
References (lookup keys of other models) are resolved with one query per batch per target model. When the batch
statement fails (a value the database refuses), the batch is retried row by row, each in its own savepoint, and
only the rows the database refuses are rejected.

When the batch records changes (``PersistBatch.changes`` is a list), the update applies only to a row some value of
which differs (``WHERE old IS DISTINCT FROM new``, JSON compared as ``jsonb`` on PostgreSQL), so a no-op upsert
writes nothing and keeps its ``updated_at``. Every row the statement did write (inserted or changed) carries the
batch's ``updated_at``; one ``SELECT`` per chunk by the chunk's keys and that timestamp reads back their ``id`` and
``created_at``, the rest of their new state is the values just written, and those become the batch's ``upsert``
changes. (``RETURNING`` would say the same, but turns the
pipelined executemany into SQLAlchemy's insertmanyvalues, measured far slower: docs/benchmarks.md.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, Table, cast, or_, select, tuple_
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
    statement = upsert_statement(batch.connection.dialect.name, batch.spec.schema, only_changes=recording)
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
                batch.connection.execute(statement, [row for _, row in chunk])
        except SQLAlchemyError:
            rejections.extend(_one_by_one(batch.connection, statement, chunk))
        if batch.changes is not None:
            written = _written(batch, [row for _, row in chunk], now)
            batch.changes.extend(upserted(batch.spec.schema, batch.integration_id, written))
    return rejections


def _written(batch: PersistBatch, rows: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """The chunk's rows this upsert inserted or changed (those of its keys whose ``updated_at`` is the batch's),
    each as the full row: the values written, with the ``id`` and ``created_at`` the database holds."""
    table: Table = batch.spec.model.__table__  # type: ignore[attr-defined]
    keys = list(batch.spec.upsert)
    columns = [table.c[k] for k in keys]
    match = columns[0].in_([r[keys[0]] for r in rows]) if len(keys) == 1 else tuple_(*columns).in_(
        [tuple(r[k] for k in keys) for r in rows]
    )
    query = select(table.c.id, table.c.created_at, *columns).where(
        table.c.tenant_id == batch.tenant_id,
        table.c.integration_id == batch.integration_id,
        table.c.updated_at == now,
        match,
    )
    by_key = {tuple(r[k] for k in keys): r for r in rows}
    names = [c.name for c in table.columns]
    written = []
    for found in batch.connection.execute(query.order_by(table.c.id)):
        row = {**by_key[tuple(found[2:])], "id": found[0], "created_at": found[1]}
        written.append({name: row.get(name) for name in names})
    return written


def _one_by_one(
    connection: Connection, statement: Any, rows: list[tuple[int, dict[str, Any]]]
) -> list[PersistRejection]:
    refused: list[PersistRejection] = []
    for position, row in rows:
        try:
            with connection.begin_nested():
                connection.execute(statement, [row])
        except SQLAlchemyError as exc:
            refused.append(PersistRejection(position, "persist_failed", _database_reason(exc)))
    return refused


def _database_reason(exc: SQLAlchemyError) -> str:
    # The driver's message can quote the refused value (payload data); keep only the error class and first line.
    original = getattr(exc, "orig", None) or exc
    first_line = str(original).strip().splitlines()[0] if str(original).strip() else ""
    return f"the database refused the row: {type(original).__name__}: {first_line}"[:500]


@cache
def upsert_statement(dialect: str, schema: str, only_changes: bool = False) -> Any:
    """``INSERT … ON CONFLICT (tenant_id, integration_id, upsert keys) DO UPDATE`` for one model, built once.

    ``only_changes``: the update applies only to a row some value of which (``updated_at`` aside) differs."""
    spec = catalog()[schema]
    table: Table = spec.model.__table__  # type: ignore[attr-defined]
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table)
    conflict = ["tenant_id", "integration_id", *spec.upsert]
    keep = {"id", "created_at", *conflict}
    updates = {c.name: statement.excluded[c.name] for c in table.columns if c.name not in keep}
    if not only_changes:
        return statement.on_conflict_do_update(index_elements=conflict, set_=updates)
    compared = [name for name in updates if name != "updated_at"]
    differs = or_(*(_distinct(dialect, table.c[name], statement.excluded[name]) for name in compared))
    return statement.on_conflict_do_update(index_elements=conflict, set_=updates, where=differs)


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
