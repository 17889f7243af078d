"""The change feed's write side: every upsert and removal of an ingest record becomes a ``record_change`` row.

Changes are written in the transaction of the write they describe, as its last statements: ``record_changes``
first takes the tenant's sequence range from ``change_counter`` (one ``INSERT … ON CONFLICT DO UPDATE … RETURNING``,
which row-locks the tenant's counter on PostgreSQL until commit), then inserts the rows. Two writers of one tenant
therefore commit their changes in sequence order, and a reader that has seen sequence N has seen every change
below N for good (docs/decisions.md, "Change feed sequencing"). Upserts run before the counter is touched, so
writers of one tenant wait for each other only for the few statements between the counter and the commit.

``remove_records`` deletes records with their ``remove`` changes (provider deletes, complete-snapshot removal);
``record_state`` is the one serialisation of a record the feed (and, later, the records API) hands out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from sqlalchemy import Connection, Table, delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from engine.store.tables import ChangeCounter, RecordChange, utcnow
from ingest.catalog import catalog

Op = Literal["upsert", "remove"]

#: Rows per DELETE (well under both databases' bound-parameter limits).
_CHUNK = 1000


@dataclass(frozen=True)
class Change:
    """One write awaiting its sequence: which record, and its new state (``None`` for a removal)."""

    schema: str
    record_id: int
    integration_id: str
    op: Op
    record: dict[str, Any] | None


def record_state(columns: Mapping[str, Any]) -> dict[str, Any]:
    """A record as the API shows it: every column of its row, datetimes as ISO 8601 text (UTC), JSON as stored."""
    state = dict(columns)
    for name, value in state.items():
        if isinstance(value, date):
            state[name] = _date_text(value)
    return state


def _date_text(value: date) -> str:
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat()
    return value.isoformat()


def upserted(schema: str, integration_id: str, rows: Iterable[Mapping[str, Any]]) -> list[Change]:
    """The ``upsert`` changes of rows an upsert's ``RETURNING`` handed back (each row's full new state)."""
    return [Change(schema, int(row["id"]), integration_id, "upsert", record_state(row)) for row in rows]


def record_changes(connection: Connection, tenant_id: str, changes: Sequence[Change]) -> tuple[int, int] | None:
    """Give ``changes`` the tenant's next sequences, in order, and insert them; call it last before commit.

    Returns the (first, last) sequence written, or ``None`` when there was nothing to record (the counter is then
    not touched, so a page of no-op upserts does not wait for other writers of its tenant).
    """
    if not changes:
        return None
    last = _allocate(connection, tenant_id, len(changes))
    first = last - len(changes) + 1
    now = utcnow()
    rows = [
        {
            "tenant_id": tenant_id,
            "seq": first + index,
            "schema_name": change.schema,
            "record_id": change.record_id,
            "integration_id": change.integration_id,
            "op": change.op,
            "record": change.record,
            "changed_at": now,
        }
        for index, change in enumerate(changes)
    ]
    connection.execute(insert(RecordChange.__table__), rows)  # type: ignore[arg-type]
    return first, last


def last_seq(connection: Connection, tenant_id: str) -> int:
    """The tenant's last sequence handed out (0 before its first change).

    Read before and after a run, it brackets the run's changes: sequences are committed in order per tenant, so
    every change the run wrote lies in ``(before, after]`` (with other writers' of the tenant between them).
    """
    table: Table = ChangeCounter.__table__  # type: ignore[attr-defined]
    value = connection.execute(select(table.c.last_seq).where(table.c.tenant_id == tenant_id)).scalar()
    return int(value or 0)


def _allocate(connection: Connection, tenant_id: str, count: int) -> int:
    """Reserve ``count`` sequences of the tenant; returns the last. Holds the counter's row lock until commit."""
    table: Table = ChangeCounter.__table__  # type: ignore[attr-defined]
    dialect_insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    statement = dialect_insert(table).values(tenant_id=tenant_id, last_seq=count)
    statement = statement.on_conflict_do_update(
        index_elements=["tenant_id"], set_={"last_seq": table.c.last_seq + statement.excluded.last_seq}
    ).returning(table.c.last_seq)
    return int(connection.execute(statement).scalar_one())


def remove_records(
    connection: Connection, schema: str, tenant_id: str, integration_id: str, *conditions: Any
) -> list[Change]:
    """Delete the integration's records of ``schema`` matching ``conditions`` (column expressions of its table),
    and first the records of other models that reference them; returns their ``remove`` changes, dependents
    first. The caller passes them to ``record_changes`` before it commits."""
    table = table_of(schema)
    where = [table.c.tenant_id == tenant_id, table.c.integration_id == integration_id, *conditions]
    ids = [row.id for row in connection.execute(select(table.c.id).where(*where))]
    return remove_ids(connection, schema, tenant_id, integration_id, ids)


def remove_ids(
    connection: Connection, schema: str, tenant_id: str, integration_id: str, ids: Sequence[int]
) -> list[Change]:
    """``remove_records`` by row ID."""
    if not ids:
        return []
    changes: list[Change] = []
    for dependent, into in _dependents(schema):
        dependent_table = table_of(dependent)
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            where = dependent_table.c[into].in_(chunk)
            changes.extend(remove_records(connection, dependent, tenant_id, integration_id, where))
    table = table_of(schema)
    for start in range(0, len(ids), _CHUNK):
        statement = (
            delete(table)
            .where(table.c.tenant_id == tenant_id, table.c.integration_id == integration_id)
            .where(table.c.id.in_(ids[start : start + _CHUNK]))
            .returning(table.c.id)
        )
        gone = sorted(row.id for row in connection.execute(statement))
        changes.extend(Change(schema, int(i), integration_id, "remove", None) for i in gone)
    return changes


def table_of(schema: str) -> Table:
    return catalog()[schema].model.__table__  # type: ignore[attr-defined,no-any-return]


def _dependents(schema: str) -> list[tuple[str, str]]:
    """(schema, column) of every model with a reference into ``schema``: their rows go when its rows go."""
    return [
        (spec.schema, ref.into) for spec in catalog().values() for ref in spec.references if ref.target == schema
    ]


__all__ = [
    "Change",
    "record_changes",
    "record_state",
    "remove_ids",
    "remove_records",
    "table_of",
    "upserted",
]
