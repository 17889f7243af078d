"""The claim and the finish of queued runs on the event loop's own PostgreSQL connection (issue 22, queue overhead).

``engine.runs.runstore`` batches claims and finishes of concurrent runs into shared statements, run in a thread.
On a busy worker each of those batches paid a pool checkout with its pre-ping, ``BEGIN``, the statement(s) and
``COMMIT``: four or five round trips, each one waiting for the GIL again in the batch's thread while 64 Dramatiq
threads and the event loop compete for it. Measured (``python -m bench queue``, 2-core VM): claim batches of ~20 runs
took ~23 ms each and the worker drained 780 runs/s at 0.65 ms of CPU a run: it was waiting, not working.

Here each batch is **one statement in autocommit** (atomic on its own), awaited by the loop on a psycopg
``AsyncConnection`` of its own (``engine.store.loopdb``): one round trip, no thread hop.

- ``claim``: the same data-modifying CTE as ``runstore``'s joined claim (``queued → running``, attempts + 1,
  heartbeat stamped, the integration and the operation state joined), compiled once from the same SQLAlchemy
  statement, so both paths always claim alike.
- ``succeed``: ``running → succeeded`` with each run's result, in one statement that first checks whether any
  enabled event endpoint of the runs' tenants exists. When one does, the statement changes nothing and answers
  ``None``: the caller then takes ``runstore.succeed_runs`` (one transaction with the outbox rows), because an event
  must be written in the transaction of its cause. Runs that keep an operation state (cursor, last success) or
  wrote records (``records.changed``) always take that path; this one is for results only.

Every transition stays conditional on the status it leaves, exactly as in ``runstore``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg.types.json import Json
from sqlalchemy.dialects.postgresql import psycopg as pg_psycopg
from sqlmodel.sql.sqltypes import UTCDateTime

from engine.runs.runstore import (
    _INTEGRATION,
    _RUN,
    _STATE,
    _STATEMENTS,
    Claimed,
    Success,
    _claimed_in_order,
    _split,
    _utc,
)
from engine.store.loopdb import LoopConnection
from engine.store.tables import EventEndpoint, RunStatus, utcnow

_ENDPOINT = EventEndpoint.__table__  # type: ignore[attr-defined]


def _compiled_claim() -> tuple[str, dict[str, Any]]:
    """``runstore``'s joined claim as psycopg SQL (``%(name)s`` parameters) and its constant parameters."""
    statement = _STATEMENTS["postgresql"].claim_joined
    assert statement is not None
    compiled = statement.compile(dialect=pg_psycopg.dialect())
    constants = {name: value for name, value in compiled.params.items() if name not in ("ids", "now")}
    return str(compiled), constants


_CLAIM_SQL, _CLAIM_CONSTANTS = _compiled_claim()

#: Column names (with the joined claim's prefixes) whose values are timestamps: psycopg hands them back in the
#: session's time zone, SQLAlchemy's ``UTCDateTime`` in UTC; converted here so both paths give the same values.
_TIMESTAMPS = frozenset(
    f"{prefix}{column.name}"
    for prefix, table in (("r_", _RUN), ("i_", _INTEGRATION), ("s_", _STATE))
    for column in table.columns
    if isinstance(column.type, UTCDateTime)
)

_SUCCEED_SQL = f"""
WITH listening AS (
    SELECT EXISTS (
        SELECT 1 FROM {_ENDPOINT.name} AS e
        WHERE e.enabled AND e.tenant_id IN (SELECT r.tenant_id FROM run AS r WHERE r.id = ANY(%(ids)s::varchar[]))
    ) AS yes
), done AS (
    UPDATE run SET status = '{RunStatus.succeeded.value}', result = v.result, finished_at = %(now)s,
        error_code = '', error_message = ''
    FROM unnest(%(ids)s::varchar[], %(results)s::json[]) AS v(id, result), listening
    WHERE run.id = v.id AND run.status = '{RunStatus.running.value}' AND NOT listening.yes
    RETURNING run.id
)
SELECT listening.yes, done.id FROM listening LEFT JOIN done ON true
"""


async def claim(connections: LoopConnection, run_ids: Sequence[str]) -> list[Claimed | None]:
    """``runstore.claim_runs`` in one autocommit statement on the loop's connection (PostgreSQL only)."""
    params = {**_CLAIM_CONSTANTS, "ids": list(run_ids), "now": utcnow()}
    async with connections.connection() as connection:
        cursor = await connection.execute(_CLAIM_SQL, params)
        rows = await cursor.fetchall()
        names = [column.name for column in cursor.description or ()]
    found = []
    for row in rows:
        mapping = {name: _utc(value) if name in _TIMESTAMPS else value for name, value in zip(names, row, strict=True)}
        found.append(_split(mapping))
    return _claimed_in_order(run_ids, found)


def fast_finish(item: Success) -> bool:
    """Whether a success can be recorded by ``succeed`` (its result only: no operation state, no records)."""
    return not item.keeps_state and item.records is None and item.removed is None and item.changes is None


async def succeed(connections: LoopConnection, items: Sequence[Success]) -> list[bool] | None:
    """``running → succeeded`` with each item's result in one autocommit statement; ``None`` (nothing changed) when
    an enabled event endpoint of the runs' tenants exists, so the caller records them with their events instead
    (``runstore.succeed_runs``). Every item must pass ``fast_finish``."""
    ids = [item.run_id for item in items]
    # A result the operation returned is stored as JSON; ``None`` as SQL NULL (read back as ``None`` either way).
    results = [Json(item.result) if item.result is not None else None for item in items]
    async with connections.connection() as connection:
        cursor = await connection.execute(_SUCCEED_SQL, {"ids": ids, "results": results, "now": utcnow()})
        rows = await cursor.fetchall()
    if rows and rows[0][0]:
        return None
    moved = {row[1] for row in rows if row[1] is not None}
    return [run_id in moved for run_id in ids]
