"""Retention: the change feed and the outbound event log are pruned past their windows instead of growing forever.

- **Change feed** (``TETHER_CHANGES_RETENTION_DAYS``): per tenant, the oldest changes whose ``changed_at`` is past
  the window are deleted as a *contiguous prefix* of the tenant's sequence (walked along the primary key, a chunk
  per transaction), and ``change_counter.pruned_through`` moves to the last sequence deleted in the same
  transaction. Sequences are handed out without gaps and ``changed_at`` is taken after the sequence (under the
  counter's lock), so the prefix is exactly the expired changes. A reader whose ``after`` is below
  ``pruned_through`` has missed changes it can no longer get: ``GET /v1/changes`` refuses it with
  ``changes_cursor_expired`` (410) rather than silently skipping them (``engine.api.changes``).
- **Event log** (``TETHER_EVENT_RETENTION_DAYS``): deliveries in a final state (``delivered``, ``dead``) whose
  retry window started before the cutoff, then outbox events older than the cutoff with no delivery left. A
  delivery still ``pending`` or ``sending`` is never pruned (the retry window ends it first).

``0`` (or less) for a window keeps that data forever. ``prune`` runs both; the scheduler calls it every
``TETHER_RETENTION_PRUNE_SECONDS`` and ``tether changes prune`` runs it by hand. Several pruners at once are
harmless: deletes of already-deleted rows do nothing and ``pruned_through`` only moves forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, delete, exists, select, update

from engine.settings import Settings
from engine.store.database import Database
from engine.store.tables import ChangeCounter, EventDelivery, EventDeliveryStatus, EventOutbox, RecordChange, utcnow

_CHANGES = RecordChange.__table__  # type: ignore[attr-defined]
_COUNTER = ChangeCounter.__table__  # type: ignore[attr-defined]
_DELIVERY = EventDelivery.__table__  # type: ignore[attr-defined]
_OUTBOX = EventOutbox.__table__  # type: ignore[attr-defined]
#: Rows per transaction: short transactions, so writers of the tenant (who take its counter row) wait little.
CHUNK = 5000


@dataclass(frozen=True)
class Pruned:
    changes: int = 0
    deliveries: int = 0
    events: int = 0


def cutoff(days: float, now: datetime | None = None) -> datetime | None:
    """The instant before which data of a ``days`` window is expired; ``None`` when the window is off (``<= 0``)."""
    if days <= 0:
        return None
    return (now or utcnow()) - timedelta(days=days)


def prune(db: Database, settings: Settings, *, now: datetime | None = None) -> Pruned:
    """Both prunes with the configured windows."""
    changes_before = cutoff(settings.changes_retention_days, now)
    events_before = cutoff(settings.event_retention_days, now)
    changes = prune_changes(db, changes_before) if changes_before is not None else 0
    deliveries, events = prune_events(db, events_before) if events_before is not None else (0, 0)
    return Pruned(changes, deliveries, events)


def prune_changes(db: Database, before: datetime, *, chunk: int = CHUNK) -> int:
    """Delete every tenant's changes older than ``before`` (a contiguous prefix of its sequence); returns how many."""
    with db.engine.connect() as connection:
        tenants = list(connection.execute(select(_COUNTER.c.tenant_id)).scalars())
    return sum(_prune_tenant(db, tenant, before, chunk) for tenant in tenants)


def _prune_tenant(db: Database, tenant_id: str, before: datetime, chunk: int) -> int:
    removed = 0
    while True:
        with db.engine.begin() as connection:
            head = connection.execute(
                select(_CHANGES.c.seq, _CHANGES.c.changed_at)
                .where(_CHANGES.c.tenant_id == tenant_id)
                .order_by(_CHANGES.c.seq)
                .limit(chunk)
            ).all()
            expired = 0
            for row in head:  # the prefix: stop at the first change inside the window
                if _naive(row.changed_at) >= _naive(before):
                    break
                expired += 1
            if not expired:
                return removed
            through = head[expired - 1].seq
            deleted = connection.execute(
                delete(_CHANGES).where(_CHANGES.c.tenant_id == tenant_id, _CHANGES.c.seq <= through)
            ).rowcount
            connection.execute(
                update(_COUNTER)
                .where(_COUNTER.c.tenant_id == tenant_id, _COUNTER.c.pruned_through < through)
                .values(pruned_through=through)
            )
        removed += int(deleted or 0)
        if expired < len(head) or len(head) < chunk:
            return removed


def prune_events(db: Database, before: datetime, *, chunk: int = CHUNK) -> tuple[int, int]:
    """Delete final deliveries whose window started before ``before``, then events older than it that no delivery
    refers to any more; returns (deliveries, events) deleted."""
    final = (EventDeliveryStatus.delivered, EventDeliveryStatus.dead)
    deliveries = events = 0
    while True:
        with db.engine.begin() as connection:
            ids = list(
                connection.execute(
                    select(_DELIVERY.c.id)
                    .where(_DELIVERY.c.status.in_(final), _DELIVERY.c.window_start < before)
                    .limit(chunk)
                ).scalars()
            )
            if ids:  # fenced on the status again: a redelivery meanwhile makes it pending and keeps it
                deliveries += int(
                    connection.execute(
                        delete(_DELIVERY).where(
                            _DELIVERY.c.id.in_(ids),
                            _DELIVERY.c.status.in_(final),
                            _DELIVERY.c.window_start < before,
                        )
                    ).rowcount
                    or 0
                )
        if len(ids) < chunk:
            break
    referenced = exists().where(_DELIVERY.c.event_id == _OUTBOX.c.id)
    while True:
        with db.engine.begin() as connection:
            ids = list(
                connection.execute(
                    select(_OUTBOX.c.id).where(_OUTBOX.c.created_at < before, ~referenced).limit(chunk)
                ).scalars()
            )
            if ids:
                events += int(
                    connection.execute(delete(_OUTBOX).where(_OUTBOX.c.id.in_(ids), ~referenced)).rowcount or 0
                )
        if len(ids) < chunk:
            break
    return deliveries, events


def horizon(connection: Connection, tenant_id: str) -> tuple[int, int]:
    """The tenant's (``pruned_through``, ``last_seq``): changes at or below the first are gone for good."""
    row = connection.execute(
        select(_COUNTER.c.pruned_through, _COUNTER.c.last_seq).where(_COUNTER.c.tenant_id == tenant_id)
    ).first()
    return (int(row.pruned_through), int(row.last_seq)) if row is not None else (0, 0)


def _naive(value: datetime) -> datetime:
    """Compare as UTC whatever the driver handed back (SQLite gives naive UTC datetimes)."""
    return value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)


__all__ = ["CHUNK", "Pruned", "cutoff", "horizon", "prune", "prune_changes", "prune_events"]
