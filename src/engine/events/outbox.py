"""The outbox: events written in the transaction of the state change that caused them.

``emit`` is called with the caller's connection (a ``Session``'s is ``session.connection()``), so an event exists
exactly when its cause was committed: a status change rolled back leaves no event, and a committed one cannot lose
its event to a crash between the two writes. Fan-out happens here too: one ``event_delivery`` row per enabled
endpoint of the tenant subscribed to the type. A tenant with no such endpoint gets no row at all, so the hot paths
(a run finishing) pay one indexed read when nobody listens (docs/decisions.md, "Outbound events: fan-out at write").

The body is the Standard Webhooks shape: ``{"type": …, "timestamp": …, "data": {…}}``; the event ID (``msg_…``) is
the ``webhook-id`` header of every attempt.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select

from engine.store.tables import EventDelivery, EventDeliveryStatus, EventEndpoint, EventOutbox, new_id, utcnow

INTEGRATION_CONNECTED = "integration.connected"
INTEGRATION_RECONNECT_REQUIRED = "integration.reconnect_required"
INTEGRATION_DISCONNECTED = "integration.disconnected"
RUN_FAILED = "run.failed"
RUN_SUCCEEDED = "run.succeeded"
#: A run that stopped short and ended ``stalled`` (issue 23): its own type, so a subscriber to ``run.failed`` that
#: retries failed syncs is not handed a run whose records are partly stored, and one to neither is never told
#: ``succeeded``. Its data is ``run.failed``'s (the error's code says why: ``worker_lost``, ``no_progress``, …).
RUN_STALLED = "run.stalled"
RECORDS_CHANGED = "records.changed"
EVENT_TYPES = (
    INTEGRATION_CONNECTED,
    INTEGRATION_RECONNECT_REQUIRED,
    INTEGRATION_DISCONNECTED,
    RUN_FAILED,
    RUN_SUCCEEDED,
    RUN_STALLED,
    RECORDS_CHANGED,
)
#: The integration status each ``integration.*`` event reports.
STATUS_EVENTS = {
    "connected": INTEGRATION_CONNECTED,
    "reconnect_required": INTEGRATION_RECONNECT_REQUIRED,
    "disconnected": INTEGRATION_DISCONNECTED,
}

_ENDPOINT = EventEndpoint.__table__  # type: ignore[attr-defined]
_OUTBOX = EventOutbox.__table__  # type: ignore[attr-defined]
_DELIVERY = EventDelivery.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class NewEvent:
    tenant_id: str
    event_type: str
    data: dict[str, Any]


def new_event_id() -> str:
    return "msg_" + uuid.uuid4().hex


def integration_event(
    tenant_id: str, integration_id: str, status: str, *, owner_id: str, definition_id: str, reason: str = ""
) -> NewEvent | None:
    """The event of an integration entering ``status``, or ``None`` for a status no event reports."""
    event_type = STATUS_EVENTS.get(str(status))
    if event_type is None:
        return None
    data = {
        "integration_id": integration_id,
        "owner_id": owner_id,
        "definition_id": definition_id,
        "status": str(status),
        "reason": reason[:500],
    }
    return NewEvent(tenant_id, event_type, data)


def run_event(
    tenant_id: str, run_id: str, integration_id: str, operation: str, status: str, *, error: tuple[str, str] = ("", "")
) -> NewEvent:
    """``run.succeeded``, ``run.failed`` or ``run.stalled``; the last two carry the run's stable error code and
    scrubbed message."""
    data: dict[str, Any] = {"run_id": run_id, "integration_id": integration_id, "operation": operation}
    if status in ("failed", "stalled"):
        data["error"] = {"code": error[0], "message": error[1]}
        return NewEvent(tenant_id, RUN_FAILED if status == "failed" else RUN_STALLED, data)
    return NewEvent(tenant_id, RUN_SUCCEEDED, data)


def records_changed(
    tenant_id: str,
    run_id: str,
    integration_id: str,
    counts: dict[str, int],
    changes: tuple[int, int] | None = None,
    *,
    removed: dict[str, int] | None = None,
) -> NewEvent:
    """One event per succeeded ingest run: records persisted and removed per schema, and the change-feed range.

    ``changes`` is ``{"after": …, "until": …}``: ``GET /v1/changes?after={after}`` up to ``seq == until`` holds
    every change this run wrote (with other integrations' of the tenant among them: filter on
    ``integration_id``); ``null`` when the run changed nothing (every upsert a no-op)."""
    window = {"after": changes[0], "until": changes[1]} if changes else None
    data = {
        "run_id": run_id,
        "integration_id": integration_id,
        "counts": dict(counts),
        "removed": {schema: n for schema, n in (removed or {}).items() if n},
        "changes": window,
    }
    return NewEvent(tenant_id, RECORDS_CHANGED, data)


def emit(connection: Connection, events: Sequence[NewEvent]) -> list[str]:
    """Write ``events`` and their deliveries in ``connection``'s transaction; returns the delivery row IDs."""
    if not events:
        return []
    tenants = sorted({event.tenant_id for event in events})
    listeners: dict[str, list[tuple[str, frozenset[str]]]] = {}
    query = select(_ENDPOINT.c.id, _ENDPOINT.c.tenant_id, _ENDPOINT.c.event_types).where(
        _ENDPOINT.c.tenant_id.in_(tenants), _ENDPOINT.c.enabled.is_(True)
    )
    for row in connection.execute(query):
        listeners.setdefault(row.tenant_id, []).append((row.id, frozenset(row.event_types or ())))
    if not listeners:
        return []
    now = utcnow()
    outbox: list[dict[str, Any]] = []
    deliveries: list[dict[str, Any]] = []
    for event in events:
        targets = [endpoint for endpoint, types in listeners.get(event.tenant_id, ()) if event.event_type in types]
        if not targets:
            continue
        event_id = new_event_id()
        payload = {"type": event.event_type, "timestamp": now.isoformat(), "data": event.data}
        outbox.append(
            {
                "id": event_id,
                "tenant_id": event.tenant_id,
                "event_type": event.event_type,
                "payload": payload,
                "created_at": now,
            }
        )
        deliveries.extend(_delivery(event, event_id, endpoint, now) for endpoint in targets)
    if outbox:
        connection.execute(insert(_OUTBOX), outbox)
        connection.execute(insert(_DELIVERY), deliveries)
    return [row["id"] for row in deliveries]


def _delivery(event: NewEvent, event_id: str, endpoint_id: str, now: Any) -> dict[str, Any]:
    return {
        "id": new_id(),
        "event_id": event_id,
        "endpoint_id": endpoint_id,
        "tenant_id": event.tenant_id,
        "event_type": event.event_type,
        "status": EventDeliveryStatus.pending,
        "attempts": 0,
        "next_attempt_at": now,
        "lease_until": None,
        "enqueued_at": None,
        "last_status_code": None,
        "last_error": "",
        "window_start": now,
        "created_at": now,
        "delivered_at": None,
    }
