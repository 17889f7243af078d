"""Runs in the database, in batches: create, claim, beat and finish many runs per statement.

These are the hot-path writes of the execution layer (``engine.runs.execution``). Each function takes every item that
arrived together (see ``engine.store.batching``) and answers one entry per item, in order; an item-level problem (an
unknown integration, an invalid config) is returned as that item's exception, never raised for the batch. Each
call is one transaction of a handful of Core statements whatever the batch size, which is what makes a busy worker
cheap: statement building, the round trips and the commit are paid once per batch, not once per run.

Every transition is conditional on the status it leaves (``queued → running`` for a claim, ``running →
succeeded`` for a finish), so a duplicate message, a cancel that landed first or a second worker cannot make a run
go backwards; ``RETURNING`` tells which rows moved.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic_core import PydanticUndefined
from sqlalchemy import JSON, Connection, String, and_, any_, bindparam, case, func, insert, literal, update
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import psycopg as pg_psycopg
from sqlalchemy.orm import configure_mappers
from sqlmodel.sql.sqltypes import UTCDateTime

from engine.errors import NotFoundError
from engine.events.outbox import NewEvent, emit, records_changed, run_event
from engine.store.database import Database
from engine.store.tables import Integration, OperationState, Run, RunStatus, new_id, utcnow

_RUN = Run.__table__  # type: ignore[attr-defined]
_INTEGRATION = Integration.__table__  # type: ignore[attr-defined]
_STATE = OperationState.__table__  # type: ignore[attr-defined]
_RESULT_TYPE = _RUN.c.result.type


class _Statements:
    """The hot-path statements, built once per dialect: building and cache-keying a statement costs more than
    running it on a busy worker. PostgreSQL gets ``= ANY(array)`` for ID lists, which binds one parameter, where an
    expanding ``IN`` renders one parameter per ID at every execution."""

    def __init__(self, dialect: str) -> None:
        def among(column: Any) -> Any:
            if dialect == "postgresql":
                return column == any_(bindparam("ids", type_=postgresql.ARRAY(String)))
            return column.in_(bindparam("ids", expanding=True))

        self.claim = (
            update(_RUN)
            .where(among(_RUN.c.id), _RUN.c.status == RunStatus.queued)
            .values(
                status=RunStatus.running,
                attempts=_RUN.c.attempts + 1,
                heartbeat_at=bindparam("now"),
                started_at=func.coalesce(_RUN.c.started_at, bindparam("now")),
            )
            .returning(*_RUN.columns)
        )
        #: PostgreSQL only: the claim and both loads in one statement (a data-modifying CTE joined to the rows).
        self.claim_joined = None
        if dialect == "postgresql":
            claimed = self.claim.cte("claimed")
            same_state = and_(
                _STATE.c.integration_id == claimed.c.integration_id, _STATE.c.operation == claimed.c.operation
            )
            self.claim_joined = sa_select(
                *(claimed.c[c.name].label(f"r_{c.name}") for c in _RUN.columns),
                *(c.label(f"i_{c.name}") for c in _INTEGRATION.columns),
                *(c.label(f"s_{c.name}") for c in _STATE.columns),
            ).select_from(
                claimed.outerjoin(_INTEGRATION, _INTEGRATION.c.id == claimed.c.integration_id).outerjoin(
                    _STATE, same_state
                )
            )
        self.integrations = sa_select(*_INTEGRATION.columns).where(among(_INTEGRATION.c.id))
        self.states = sa_select(*_STATE.columns).where(among(_STATE.c.integration_id))
        self.beat = (
            update(_RUN)
            .where(among(_RUN.c.id), _RUN.c.status == RunStatus.running)
            .values(heartbeat_at=bindparam("now"))
            .returning(_RUN.c.id)
        )
        self.succeed = (
            update(_RUN)
            .where(among(_RUN.c.id), _RUN.c.status == RunStatus.running)
            .values(
                status=RunStatus.succeeded,
                result=bindparam("result", type_=_RESULT_TYPE),
                finished_at=bindparam("now"),
                error_code="",
                error_message="",
            )
            .returning(_RUN.c.id, _RUN.c.tenant_id)
        )
        # RETURNING makes SQLAlchemy send a batch as one multi-row INSERT ("insertmanyvalues"), not row by row.
        self.insert = insert(_RUN).returning(_RUN.c.id)


_STATEMENTS = {name: _Statements(name) for name in ("postgresql", "sqlite")}


def _statements(connection: Connection) -> _Statements:
    return _STATEMENTS.get(connection.dialect.name) or _Statements(connection.dialect.name)


def detached(model: Any, values: Mapping[str, Any]) -> Any:
    """A model instance from a complete row, without validation (the values come typed from the database or
    from ``new_run``): an order of magnitude cheaper than ``Model(**values)`` on the hot path."""
    return model.model_construct(**values)


# Attribute access on instances made by ``model_construct`` needs configured mappers, which an ORM session would
# otherwise configure on first use (a worker process may never open one before its first claim).
configure_mappers()


#: Each field of ``Run`` with its default factory or its (immutable) default, read once: pydantic's ``get_default``
#: inspects the factory's signature at every call (a tenth of a dispatch's CPU).
_RUN_DEFAULTS: list[tuple[str, Callable[[], Any] | None, Any]] = [
    (name, info.default_factory, info.default)
    for name, info in Run.model_fields.items()  # type: ignore[misc]
]
# Shared, not copied per run: only immutable defaults (or none: the fields every run is given) qualify.
assert all(
    d is PydanticUndefined or isinstance(d, str | int | float | bool | type(None))
    for _, factory, d in _RUN_DEFAULTS
    if factory is None
)


def new_run(**fields: Any) -> Run:
    """A ``queued`` run with every column set (defaults filled in), ready for ``create_runs``."""
    values = {
        name: fields[name] if name in fields else (factory() if factory is not None else default)
        for name, factory, default in _RUN_DEFAULTS
    }
    return detached(Run, values)


@dataclass(frozen=True)
class NewRun:
    """A run to create. ``build`` turns the loaded integration into the run row (validating the operation and its
    config); it raises for an item that cannot be created."""

    integration_id: str
    build: Callable[[Integration], Run]
    #: Called by the caller of ``create_runs`` once the run is committed (the executor sends its message).
    after: Callable[[Run], None] | None = None


@dataclass(frozen=True)
class Claimed:
    run: Run
    integration: Integration | None
    state: OperationState | None


@dataclass(frozen=True)
class Success:
    run_id: str
    integration_id: str
    operation: str
    result: Any
    #: Whether to write the operation's state row (last success, and the cursor when ``cursor`` is set).
    keeps_state: bool
    cursor: Any = None
    #: An ingest run's records persisted per schema (its ``records.changed`` event); ``None`` for other runs.
    records: dict[str, int] | None = None
    #: Records the run removed per schema (provider deletes, complete snapshots); ``None`` or empty when none.
    removed: dict[str, int] | None = None
    #: The change-feed range ``(after, until)`` holding the run's changes; ``None`` when it changed nothing.
    changes: tuple[int, int] | None = None


def create_runs(db: Database, items: Sequence[NewRun]) -> list[Run | BaseException]:
    """Insert the runs of ``items`` (status ``queued``) in one multi-row INSERT; unknown integrations and items
    whose ``build`` raises are answered with their exception.

    PostgreSQL: on the calling thread's own autocommit connection (``engine.store.threaddb``), two round trips: the
    integrations read, then the INSERT, which commits by itself. They were never one snapshot anyway (read
    committed): an integration removed in between fails the INSERT on its foreign key, as it did in a transaction.
    """
    ids = sorted({item.integration_id for item in items})
    if db.dialect == "postgresql":
        with db.thread_connection_for("create-runs").connection() as raw:
            cursor = raw.execute(_PG_INTEGRATIONS, {"ids": ids})
            names = [column.name for column in cursor.description or ()]
            integrations = {}
            for row in cursor.fetchall():
                values = {
                    name: _utc(value) if name in _INTEGRATION_TIMESTAMPS else value
                    for name, value in zip(names, row, strict=True)
                }
                integrations[values["id"]] = detached(Integration, values)
            answers, rows = built_runs(items, integrations)
            if rows:
                raw.execute(_PG_INSERT, _columns_of(rows))
        return answers
    with db.engine.begin() as connection:
        integrations = {i.id: i for i in _load(connection, Integration, _statements(connection).integrations, ids)}
        answers, rows = built_runs(items, integrations)
        if rows and connection.dialect.name == "postgresql":
            connection.exec_driver_sql(_PG_INSERT, _columns_of(rows))
        elif rows:
            connection.execute(_statements(connection).insert, rows).all()
    return answers


def built_runs(
    items: Sequence[NewRun], integrations: Mapping[str, Integration]
) -> tuple[list[Run | BaseException], list[dict[str, Any]]]:
    """Each item's run (or its exception: an unknown integration, what ``build`` raised) and the rows to insert."""
    answers: list[Run | BaseException] = []
    rows: list[dict[str, Any]] = []
    for item in items:
        integration = integrations.get(item.integration_id)
        if integration is None:
            answers.append(NotFoundError(f"no integration {item.integration_id}"))
            continue
        try:
            run = item.build(integration)
        except Exception as exc:
            answers.append(exc)
            continue
        answers.append(run)
        rows.append({c.name: getattr(run, c.name) for c in _RUN.columns})
    return answers, rows


def _pg_insert() -> str:
    """PostgreSQL: the batch's rows as one array per column, ``unnest``ed into the table. The statement text is the
    same whatever the batch size, so psycopg parses it once; a multi-row ``VALUES`` (what SQLAlchemy sends) is a new,
    long text per batch size that psycopg splits into parameters again at every execution (measured: a third of the
    dispatching process's CPU per run)."""
    dialect = pg_psycopg.dialect()
    names = ", ".join(column.name for column in _RUN.columns)
    # Unsized types: a cast to VARCHAR(n) would truncate a long value silently, where the INSERT itself refuses it.
    arrays = ", ".join(
        f"%({column.name})s::{column.type.compile(dialect=dialect).split('(')[0]}[]" for column in _RUN.columns
    )
    return f"INSERT INTO {_RUN.name} ({names}) SELECT * FROM unnest({arrays})"


_PG_INSERT = _pg_insert()
#: The integrations of a batch (``id = ANY(%(ids)s)``) as psycopg SQL, and which of their columns are timestamps:
#: psycopg gives those in the session's time zone, SQLAlchemy's ``UTCDateTime`` in UTC (converted, ``_utc``).
_PG_INTEGRATIONS = str(_STATEMENTS["postgresql"].integrations.compile(dialect=pg_psycopg.dialect()))
_INTEGRATION_TIMESTAMPS = frozenset(c.name for c in _INTEGRATION.columns if isinstance(c.type, UTCDateTime))


def _utc(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.utcoffset() is None else value.astimezone(UTC)
    return value


_JSON_COLUMNS = frozenset(column.name for column in _RUN.columns if isinstance(column.type, JSON))


def _columns_of(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The rows as one list per column (``_PG_INSERT``'s parameters); JSON values wrapped for psycopg, ``None``
    stored as SQL NULL (read back as ``None`` like JSON ``null``)."""
    from psycopg.types.json import Json

    columns: dict[str, list[Any]] = {}
    for column in _RUN.columns:
        name = column.name
        if name in _JSON_COLUMNS:
            columns[name] = [Json(row[name]) if row[name] is not None else None for row in rows]
        else:
            columns[name] = [row[name] for row in rows]
    return columns


def claim_runs(db: Database, run_ids: Sequence[str]) -> list[Claimed | None]:
    """``queued → running`` (attempts + 1, heartbeat stamped) for each run, with its integration and operation
    state loaded in the same transaction; ``None`` for a run not claimed (finished, cancelled, or running
    elsewhere)."""
    with db.engine.begin() as connection:
        statements = _statements(connection)
        if statements.claim_joined is not None:
            joined = connection.execute(statements.claim_joined, {"ids": list(run_ids), "now": utcnow()}).all()
            return _claimed_in_order(run_ids, [_split(row._mapping) for row in joined])
        rows = connection.execute(statements.claim, {"ids": list(run_ids), "now": utcnow()}).all()
        runs = {row.id: detached(Run, row._mapping) for row in rows}
        if not runs:
            return [None] * len(run_ids)
        integration_ids = sorted({run.integration_id for run in runs.values()})
        integrations = {i.id: i for i in _load(connection, Integration, statements.integrations, integration_ids)}
        states = {
            (s.integration_id, s.operation): s
            for s in _load(connection, OperationState, statements.states, integration_ids)
        }
    found = [
        Claimed(run, integrations.get(run.integration_id), states.get((run.integration_id, run.operation)))
        for run in runs.values()
    ]
    return _claimed_in_order(run_ids, found)


def _split(row: Mapping[str, Any]) -> Claimed:
    """One row of the joined claim: the run, its integration and its state, by their column prefixes."""

    def part(prefix: str, table: Any) -> dict[str, Any]:
        return {c.name: row[f"{prefix}{c.name}"] for c in table.columns}

    integration = part("i_", _INTEGRATION)
    state = part("s_", _STATE)
    return Claimed(
        detached(Run, part("r_", _RUN)),
        detached(Integration, integration) if integration["id"] is not None else None,
        detached(OperationState, state) if state["id"] is not None else None,
    )


def _claimed_in_order(run_ids: Sequence[str], found: list[Claimed]) -> list[Claimed | None]:
    by_id = {claimed.run.id: claimed for claimed in found}
    # pop: a run ID twice in one batch is claimed once
    return [by_id.pop(run_id, None) for run_id in run_ids]


def beat_runs(db: Database, run_ids: Sequence[str]) -> set[str]:
    """Stamp the heartbeat of the runs still ``running``; returns their IDs (a missing one was cancelled)."""
    with db.engine.begin() as connection:
        rows = connection.execute(_statements(connection).beat, {"ids": list(run_ids), "now": utcnow()}).all()
    return {row.id for row in rows}


def succeed_runs(db: Database, items: Sequence[Success]) -> list[bool]:
    """``running → succeeded`` with each run's result, in one UPDATE; then the operation-state rows of those that
    keep one. ``False`` for a run that was no longer running (a cancel won: its cursor is not advanced)."""
    now = utcnow()
    ids = [item.run_id for item in items]
    with db.engine.begin() as connection:
        succeed = _statements(connection).succeed
        if all(item.result is None for item in items):
            statement, params = succeed, {"ids": ids, "now": now, "result": None}
        else:
            result = case(
                {item.run_id: literal(item.result, _RESULT_TYPE) for item in items},
                value=_RUN.c.id,
                else_=literal(None, _RESULT_TYPE),
            )
            statement, params = succeed.values(result=result), {"ids": ids, "now": now}
        changed = {row.id: row.tenant_id for row in connection.execute(statement, params)}
        emit(connection, _success_events(items, changed))
        for item in items:
            if item.run_id in changed and item.keeps_state:
                values: dict[str, Any] = {"last_success_at": now, "last_run_id": item.run_id, "updated_at": now}
                if item.cursor is not None:
                    values["cursor"] = item.cursor
                upsert_state(connection, item.integration_id, item.operation, values)
    return [item.run_id in changed for item in items]


def _success_events(items: Sequence[Success], tenants: Mapping[str, str]) -> list[NewEvent]:
    """``run.succeeded`` for each run that moved, and ``records.changed`` for the ingest runs among them."""
    events: list[NewEvent] = []
    for item in items:
        tenant = tenants.get(item.run_id)
        if tenant is None:
            continue
        events.append(run_event(tenant, item.run_id, item.integration_id, item.operation, "succeeded"))
        wrote = bool(item.records and any(item.records.values())) or bool(item.removed and any(item.removed.values()))
        if wrote:
            events.append(
                records_changed(
                    tenant, item.run_id, item.integration_id, item.records or {}, item.changes, removed=item.removed
                )
            )
    return events


def upsert_state(connection: Connection, integration_id: str, operation_id: str, values: dict[str, Any]) -> None:
    """Set fields of an operation's state row, creating it if missing (race-free: ON CONFLICT on its unique key)."""
    from sqlalchemy.dialects import postgresql, sqlite

    insert_ = (postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert)(_STATE)
    row = {"id": new_id(), "integration_id": integration_id, "operation": operation_id, "fence": 0, **values}
    row.setdefault("updated_at", utcnow())
    connection.execute(
        insert_.values(**row).on_conflict_do_update(index_elements=["integration_id", "operation"], set_=values)
    )


def _load(connection: Connection, model: Any, statement: Any, ids: list[str]) -> list[Any]:
    """Rows of ``model`` whose key is in ``ids``, as detached instances."""
    return [detached(model, row._mapping) for row in connection.execute(statement, {"ids": ids})]


__all__ = [
    "Claimed",
    "NewRun",
    "Success",
    "beat_runs",
    "claim_runs",
    "create_runs",
    "detached",
    "new_run",
    "succeed_runs",
    "upsert_state",
]
