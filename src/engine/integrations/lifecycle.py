"""Integration lifecycle: the one place where an integration's status changes, always with an audit event.

    pending ──► connected ──► reconnect_required ──► connected
       │            │  ▲              │
       │            ▼  │              ▼
       │          error ──────────► disconnected ◄── (any state)
       └──────────────────────────────►

Every change of status also writes the host app's ``integration.connected``, ``integration.reconnect_required`` or
``integration.disconnected`` event into the outbox, in the same transaction (``engine.events.outbox``).

Only the transitions below are allowed, so nothing can downgrade a healthy connection by mistake: a health check
that fails marks ``health`` invalid but leaves ``status`` alone; only a refused credential (``invalid_grant``, a
401 on validation) moves a connection to ``reconnect_required``. A disconnected integration cannot be disconnected
again (``invalid_transition``), and disconnecting leaves ``health`` at ``unknown``: there is no credential left
whose health could be known.

Operations run only on a ``connected`` integration (``require_connected``): every other state answers 409 before a
run is recorded, ``reconnect_required`` with its own code (the user must reconnect), the rest with
``integration_not_connected``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy import insert as sa_insert
from sqlalchemy import select as sa_select
from sqlalchemy import update as sa_update
from sqlmodel import Session

from engine.errors import TetherError
from engine.events.outbox import emit, integration_event
from engine.store.tables import AuditEvent, Health, Integration, IntegrationStatus, new_id

Status = IntegrationStatus

ALLOWED: dict[str, frozenset[str]] = {
    Status.pending: frozenset({Status.connected, Status.error, Status.disconnected}),
    Status.connected: frozenset({Status.connected, Status.reconnect_required, Status.error, Status.disconnected}),
    Status.reconnect_required: frozenset({Status.connected, Status.reconnect_required, Status.disconnected}),
    Status.error: frozenset({Status.connected, Status.error, Status.reconnect_required, Status.disconnected}),
    Status.disconnected: frozenset({Status.pending, Status.connected}),
}


class InvalidTransition(TetherError):
    code = "invalid_transition"
    status = 409


class ReconnectRequired(TetherError):
    """The provider no longer honours this connection's grant; only the user reconnecting fixes it."""

    code = "reconnect_required"
    status = 409


class IntegrationNotConnected(TetherError):
    """An operation or an access token was asked of an integration that holds no usable connection."""

    code = "integration_not_connected"
    status = 409


def require_connected(integration: Integration) -> None:
    """Refuse work that needs the provider unless the integration is ``connected``."""
    status = IntegrationStatus(integration.status)
    if status == Status.connected:
        return
    if status == Status.reconnect_required:
        raise ReconnectRequired("this integration needs to be reconnected")
    raise IntegrationNotConnected(f"this integration is {status}, not connected")


def transition(
    session: Session,
    integration: Integration,
    to: IntegrationStatus,
    *,
    actor: str,
    action: str,
    reason: str = "",
    detail: dict[str, Any] | None = None,
) -> bool:
    """Move ``integration`` to ``to`` and record why; returns whether the status changed.

    Raises ``InvalidTransition`` for a move the lifecycle does not allow. The caller commits the session, so the
    status change and its audit event land together or not at all.
    """
    current = IntegrationStatus(integration.status)
    if to not in ALLOWED[current]:
        raise InvalidTransition(f"an integration cannot go from {current} to {to}")
    now = datetime.now(UTC)
    changed = current != to
    integration.status = to
    integration.status_reason = reason[:500]
    integration.version += 1
    integration.updated_at = now
    if to == Status.connected and changed:
        integration.connected_at = now
    if to == Status.disconnected:
        integration.health = Health.unknown
    session.add(integration)
    audit(session, integration, actor=actor, action=action, detail={"from": current, "to": to, **(detail or {})})
    if changed:
        owner, definition = integration.owner_id, integration.definition_id
        _emit_status(session.connection(), integration.tenant_id, integration.id, to, owner, definition, reason)
    return changed


def _emit_status(
    connection: Connection,
    tenant_id: str,
    integration_id: str,
    status: IntegrationStatus,
    owner_id: str,
    definition_id: str,
    reason: str,
) -> None:
    """The host app's ``integration.*`` event of this change, in its transaction (``engine.events.outbox``)."""
    event = integration_event(
        tenant_id, integration_id, status, owner_id=owner_id, definition_id=definition_id, reason=reason
    )
    if event is not None:
        emit(connection, [event])


def audit(
    session: Session,
    integration: Integration,
    *,
    actor: str,
    action: str,
    outcome: str = "ok",
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Record one audit event (never pass secrets in ``detail``)."""
    event = AuditEvent(
        tenant_id=integration.tenant_id,
        integration_id=integration.id,
        actor=actor,
        action=action,
        outcome=outcome,
        detail=detail or {},
    )
    session.add(event)
    return event


def mark_reconnect_required(
    connection: Connection, integration_id: str, *, actor: str, action: str, reason: str
) -> bool:
    """The Core-statement twin of ``transition`` for callers holding a raw locked connection (the Keystore's
    refresh), where opening another session could wait on the caller's own lock. Returns whether it changed."""
    row = connection.execute(
        sa_select(
            Integration.status, Integration.tenant_id, Integration.owner_id, Integration.definition_id
        ).where(Integration.id == integration_id)  # type: ignore[arg-type]
    ).first()
    if row is None:
        return False
    current = IntegrationStatus(row.status)
    if current == Status.reconnect_required:
        return False
    if Status.reconnect_required not in ALLOWED[current]:
        raise InvalidTransition(f"an integration cannot go from {current} to {Status.reconnect_required}")
    now = datetime.now(UTC)
    connection.execute(
        sa_update(Integration)
        .where(Integration.id == integration_id)  # type: ignore[arg-type]
        .values(
            status=Status.reconnect_required,
            status_reason=reason[:500],
            version=Integration.version + 1,
            updated_at=now,
        )
    )
    connection.execute(
        sa_insert(AuditEvent).values(
            id=new_id(),
            tenant_id=row.tenant_id,
            integration_id=integration_id,
            actor=actor,
            action=action,
            outcome="failed",
            detail={"from": current, "to": Status.reconnect_required, "reason": reason},
            created_at=now,
        )
    )
    _emit_status(
        connection, row.tenant_id, integration_id, Status.reconnect_required, row.owner_id, row.definition_id, reason
    )
    return True
