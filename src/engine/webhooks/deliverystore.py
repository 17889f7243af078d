"""Webhook delivery rows in batches: claim, renew and finish many deliveries per statement (issue 22).

The processing side of ``engine.webhooks.deliveries`` runs these for every chunk of a queue message's row IDs, as
``engine.runs.runstore`` does for runs: the round trips and the commit are paid once per chunk, not once per
delivery. One worker process used to spend ~70% of its event loop's time waiting on two statements per delivery
(the claim, the finish), one after the other on its one connection.

- ``claim_deliveries``: ``received → received`` with ``attempts + 1`` and ``processed_at`` = now (the lease), for
  every row of the chunk that is ``received`` and not leased by another worker (its claim older than the lease),
  with each row's endpoint webhook and integration loaded in the same statement (PostgreSQL: ``id = ANY(…)`` in a
  data-modifying CTE joined to both tables; SQLite: ``IN (…)`` and one ``SELECT`` in one transaction).
- ``renew_leases``: a chunk still being handled past half its lease stamps the lease again, fenced by the attempt
  it claimed: a row another worker took over meanwhile is not ours any more and is skipped.
- ``finish_deliveries``: the final writes of a chunk, fenced per row by the attempt this worker claimed (a stale
  worker writes nothing), the runs the deliveries started finished with them, and the ``records.changed`` events of
  those that changed records written in the same transaction, only for the rows whose fence held (PostgreSQL: one
  ``UPDATE … FROM unnest(…)``; SQLite: one statement per row, one transaction).

On PostgreSQL the claim and a finish without events are single statements on the event loop's own autocommit
connections (``Database.worker_connections``, ``engine.store.loopdb``): one round trip, no thread hop, and the
statements of the messages in flight side by side on a few connections. A finish with events, and everything on
SQLite, is one transaction in a thread.

Statements touch rows in ID order (IDs sorted, arrays sorted), so two workers claiming overlapping chunks lock rows
in the same order and cannot deadlock each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import anyio.to_thread
from sqlalchemy import Connection, bindparam, or_, select, update

from engine.events.outbox import NewEvent, emit
from engine.store.database import Database
from engine.store.tables import DeliveryStatus, Integration, Run, RunStatus, WebhookDelivery, WebhookEndpoint, utcnow

_DELIVERY = WebhookDelivery.__table__  # type: ignore[attr-defined]
_ENDPOINT = WebhookEndpoint.__table__  # type: ignore[attr-defined]
_INTEGRATION = Integration.__table__  # type: ignore[attr-defined]
_RUN = Run.__table__  # type: ignore[attr-defined]
_AT = _DELIVERY.c.processed_at.type


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery row claimed for processing (the columns processing reads)."""

    id: str
    endpoint_id: str
    delivery_id: str
    body: bytes
    headers: dict[str, str]
    #: The attempt this claim is; it fences the final write.
    attempts: int
    #: When it was recorded: its processing lag is measured from here (``engine.observability.metrics``).
    received_at: datetime


@dataclass(frozen=True, slots=True)
class EndpointRef:
    webhook: str


@dataclass(frozen=True, slots=True)
class IntegrationRef:
    id: str
    tenant_id: str
    definition_id: str
    status: str
    filter_expr: str


#: A claimed row and its context (``None`` when its endpoint or integration is gone).
ClaimedRow = tuple[Claimed, tuple[EndpointRef, IntegrationRef] | None]


@dataclass(frozen=True, slots=True)
class Finish:
    """The final write of one claimed delivery."""

    row: Claimed
    status: DeliveryStatus
    event_type: str = ""
    code: str = ""
    message: str = ""
    #: The run the delivery started (its ingest), finished with it; ``None``: no run.
    run_id: str | None = None
    run_failed: bool = False
    #: The ``records.changed`` event of a run that changed records: written only when this row's fence holds.
    event: NewEvent | None = None


# -- statements ----------------------------------------------------------------------------------------------------

# SQLite (and any dialect without arrays): SQLAlchemy Core, built once. ``IN`` lists expand per call.
_CLAIM = (
    update(_DELIVERY)
    .where(
        _DELIVERY.c.id.in_(bindparam("ids", expanding=True)),
        _DELIVERY.c.status == DeliveryStatus.received.value,
        or_(_DELIVERY.c.processed_at.is_(None), _DELIVERY.c.processed_at < bindparam("stale_before", type_=_AT)),
    )
    .values(attempts=_DELIVERY.c.attempts + 1, processed_at=bindparam("claimed_at", type_=_AT))
    .returning(
        _DELIVERY.c.id,
        _DELIVERY.c.endpoint_id,
        _DELIVERY.c.delivery_id,
        _DELIVERY.c.body,
        _DELIVERY.c.headers,
        _DELIVERY.c.attempts,
        _DELIVERY.c.received_at,
    )
)
_CONTEXT = (
    select(
        _ENDPOINT.c.id,
        _ENDPOINT.c.webhook,
        _INTEGRATION.c.id,
        _INTEGRATION.c.tenant_id,
        _INTEGRATION.c.definition_id,
        _INTEGRATION.c.status,
        _INTEGRATION.c.filter_expr,
    )
    .join_from(_ENDPOINT, _INTEGRATION, _INTEGRATION.c.id == _ENDPOINT.c.integration_id)
    .where(_ENDPOINT.c.id.in_(bindparam("endpoint_ids", expanding=True)))
)
#: One row's lease stamped again, or its final write: fenced by the attempt this worker claimed.
_FENCE = (
    _DELIVERY.c.id == bindparam("row_id"),
    _DELIVERY.c.status == DeliveryStatus.received.value,
    _DELIVERY.c.attempts == bindparam("claimed_attempts"),
)
_RENEW = update(_DELIVERY).where(*_FENCE).values(processed_at=bindparam("claimed_at", type_=_AT))
_FINISH = (
    update(_DELIVERY)
    .where(*_FENCE)
    .values(
        status=bindparam("final_status"),
        event_type=bindparam("final_event_type"),
        error_code=bindparam("final_code"),
        error_message=bindparam("final_message"),
        processed_at=bindparam("finished_at", type_=_AT),
    )
)
_FINISH_RUN = (
    update(_RUN)
    .where(_RUN.c.id == bindparam("run_id"))
    .values(
        status=bindparam("run_status"),
        finished_at=bindparam("finished_at", type_=_RUN.c.finished_at.type),
        error_code=bindparam("final_code"),
        error_message=bindparam("final_message"),
    )
)

# PostgreSQL: one statement per chunk whatever its size (the IDs and the per-row values bound as arrays).
_PG_CLAIM = """
WITH claimed AS (
    UPDATE webhook_delivery SET attempts = attempts + 1, processed_at = %(claimed_at)s
    WHERE id = ANY(%(ids)s::text[]) AND status = 'received'
      AND (processed_at IS NULL OR processed_at < %(stale_before)s)
    RETURNING id, endpoint_id, delivery_id, body, headers, attempts, received_at
)
SELECT c.id, c.endpoint_id, c.delivery_id, c.body, c.headers, c.attempts, c.received_at,
       e.webhook, i.id, i.tenant_id, i.definition_id, i.status, i.filter_expr
FROM claimed c
LEFT JOIN webhook_endpoint e ON e.id = c.endpoint_id
LEFT JOIN integration i ON i.id = e.integration_id
"""
_PG_RENEW = """
UPDATE webhook_delivery d SET processed_at = %(claimed_at)s
FROM unnest(%(ids)s::text[], %(attempts)s::int[]) AS f(id, attempts)
WHERE d.id = f.id AND d.status = 'received' AND d.attempts = f.attempts
RETURNING d.id
"""
#: The runs are finished whether or not their delivery's fence holds: a stale worker's run is its own, and would
#: otherwise stay ``running``. Its records were written (upserts); its ``records.changed`` event is not.
_PG_FINISH = """
WITH finished_runs AS (
    UPDATE run r SET status = u.status, finished_at = %(finished_at)s, error_code = u.code, error_message = u.message
    FROM unnest(%(run_ids)s::text[], %(run_statuses)s::text[], %(run_codes)s::text[], %(run_messages)s::text[])
        AS u(id, status, code, message)
    WHERE r.id = u.id
)
UPDATE webhook_delivery d SET status = f.status, event_type = f.event_type, error_code = f.code,
    error_message = f.message, processed_at = %(finished_at)s
FROM unnest(%(ids)s::text[], %(attempts)s::int[], %(statuses)s::text[], %(event_types)s::text[],
            %(codes)s::text[], %(messages)s::text[]) AS f(id, attempts, status, event_type, code, message)
WHERE d.id = f.id AND d.status = 'received' AND d.attempts = f.attempts
RETURNING d.id
"""


def _bounded(finish: Finish) -> tuple[str, str, str]:
    """The event type, code and message cut to their columns."""
    return finish.event_type[:200], finish.code[:100], finish.message[:1000]


def _run_status(finish: Finish) -> str:
    return (RunStatus.failed if finish.run_failed else RunStatus.succeeded).value


# -- claims --------------------------------------------------------------------------------------------------------


def _in_order(row_ids: Sequence[str], found: dict[str, ClaimedRow]) -> list[ClaimedRow | None]:
    # pop: an ID twice in one chunk is claimed (and processed) once
    return [found.pop(row_id, None) for row_id in row_ids]


def _claim_rows(db: Database, ids: list[str], now: datetime, lease: timedelta) -> dict[str, ClaimedRow]:
    """The claim and the contexts in one transaction in this thread (SQLite; any dialect)."""
    with db.engine.begin() as connection:
        claimed = [
            Claimed(*found)
            for found in connection.execute(_CLAIM, {"ids": ids, "stale_before": now - lease, "claimed_at": now})
        ]
        if not claimed:
            return {}
        endpoint_ids = sorted({row.endpoint_id for row in claimed})
        contexts = {
            found[0]: (EndpointRef(found[1]), IntegrationRef(*found[2:]))
            for found in connection.execute(_CONTEXT, {"endpoint_ids": endpoint_ids})
        }
    return {row.id: (row, contexts.get(row.endpoint_id)) for row in claimed}


async def claim_deliveries(
    db: Database, row_ids: Sequence[str], lease: timedelta, *, now: datetime | None = None
) -> list[ClaimedRow | None]:
    """Claim every ``received`` row of ``row_ids`` that no other worker holds (no claim, or one older than
    ``lease``), with its context: one entry per ID, in order; ``None`` for a row not claimed (final, leased
    elsewhere, unknown, or repeated earlier in ``row_ids``)."""
    ids = sorted(set(row_ids))
    if not ids:
        return [None] * len(row_ids)
    now = now or utcnow()
    if db.dialect != "postgresql":
        return _in_order(row_ids, await anyio.to_thread.run_sync(_claim_rows, db, ids, now, lease))
    async with db.worker_connections.connection() as connection:
        cursor = await connection.execute(_PG_CLAIM, {"ids": ids, "stale_before": now - lease, "claimed_at": now})
        rows = await cursor.fetchall()
    found: dict[str, ClaimedRow] = {}
    for row in rows:
        claimed = Claimed(row[0], row[1], row[2], bytes(row[3]), row[4], row[5], row[6])
        context = None if row[7] is None or row[8] is None else (EndpointRef(row[7]), IntegrationRef(*row[8:]))
        found[claimed.id] = (claimed, context)
    return _in_order(row_ids, found)


def _renew_rows(db: Database, rows: Sequence[Claimed], now: datetime) -> set[str]:
    held = set()
    with db.engine.begin() as connection:
        for row in sorted(rows, key=lambda r: r.id):
            params = {"row_id": row.id, "claimed_attempts": row.attempts, "claimed_at": now}
            if connection.execute(_RENEW, params).rowcount == 1:
                held.add(row.id)
    return held


async def renew_leases(db: Database, rows: Sequence[Claimed], *, now: datetime | None = None) -> set[str]:
    """Stamp the lease of ``rows`` again (their claims are still being handled); the IDs still held by this
    worker's claims (a row missing was taken over by another worker after the lease ran out, or finished)."""
    if not rows:
        return set()
    now = now or utcnow()
    if db.dialect != "postgresql":
        return await anyio.to_thread.run_sync(_renew_rows, db, rows, now)
    ordered = sorted(rows, key=lambda r: r.id)
    params = {"ids": [r.id for r in ordered], "attempts": [r.attempts for r in ordered], "claimed_at": now}
    async with db.worker_connections.connection() as connection:
        cursor = await connection.execute(_PG_RENEW, params)
        return {found[0] for found in await cursor.fetchall()}


# -- finishes ------------------------------------------------------------------------------------------------------


def _pg_finish_params(finishes: Sequence[Finish], now: datetime) -> dict[str, Any]:
    ordered = sorted(finishes, key=lambda f: f.row.id)
    bounded = [_bounded(f) for f in ordered]
    runs = [(f, b) for f, b in zip(ordered, bounded, strict=True) if f.run_id is not None]
    return {
        "finished_at": now,
        "ids": [f.row.id for f in ordered],
        "attempts": [f.row.attempts for f in ordered],
        "statuses": [f.status.value for f in ordered],
        "event_types": [b[0] for b in bounded],
        "codes": [b[1] for b in bounded],
        "messages": [b[2] for b in bounded],
        "run_ids": [f.run_id for f, _ in runs],
        "run_statuses": [_run_status(f) for f, _ in runs],
        "run_codes": [b[1] for _, b in runs],
        "run_messages": [b[2] for _, b in runs],
    }


def _finish_rows(db: Database, finishes: Sequence[Finish], now: datetime) -> set[str]:
    """The final writes and the events of the rows whose fence held, in one transaction in this thread."""
    with db.engine.begin() as connection:
        if db.dialect == "postgresql":
            won = {found[0] for found in connection.exec_driver_sql(_PG_FINISH, _pg_finish_params(finishes, now))}
        else:
            won = _finish_each(connection, finishes, now)
        emit(connection, [f.event for f in finishes if f.event is not None and f.row.id in won])
    return won


def _finish_each(connection: Connection, finishes: Sequence[Finish], now: datetime) -> set[str]:
    """SQLite: one fenced UPDATE per row (and its run's), in the caller's transaction; no network, so the cost
    that matters is the commit, paid once."""
    won = set()
    for finish in sorted(finishes, key=lambda f: f.row.id):
        event_type, code, message = _bounded(finish)
        params = {
            "row_id": finish.row.id,
            "claimed_attempts": finish.row.attempts,
            "final_status": finish.status.value,
            "final_event_type": event_type,
            "final_code": code,
            "final_message": message,
            "finished_at": now,
            "run_id": finish.run_id,
            "run_status": _run_status(finish),
        }
        if connection.execute(_FINISH, params).rowcount == 1:
            won.add(finish.row.id)
        if finish.run_id is not None:
            connection.execute(_FINISH_RUN, params)
    return won


async def finish_deliveries(db: Database, finishes: Sequence[Finish], *, now: datetime | None = None) -> list[bool]:
    """Write the final state of claimed deliveries (and of their runs); one entry per finish, in order: ``False``
    for a row whose fence did not hold (a newer claim holds it, or it is final already): it wrote nothing, and its
    event is not written either."""
    if not finishes:
        return []
    now = now or utcnow()
    if db.dialect != "postgresql" or any(f.event is not None for f in finishes):
        won = await anyio.to_thread.run_sync(_finish_rows, db, finishes, now)
    else:
        async with db.worker_connections.connection() as connection:
            cursor = await connection.execute(_PG_FINISH, _pg_finish_params(finishes, now))
            won = {found[0] for found in await cursor.fetchall()}
    return [f.row.id in won for f in finishes]


__all__ = [
    "Claimed",
    "ClaimedRow",
    "EndpointRef",
    "Finish",
    "IntegrationRef",
    "claim_deliveries",
    "finish_deliveries",
    "renew_leases",
]
