"""Sending deliveries: a claim with a lease, one attempt through the egress guard, then delivered, retried or dead.

Every step is a conditional UPDATE, so a duplicate message, a second worker or a sweep racing a worker cannot send a
delivery twice at once or make it go backwards:

- **claim** a message's deliveries together, in one transaction: ``pending`` (due) or ``sending`` with an expired
  lease (its worker died mid-delivery) → ``sending``, ``attempts + 1``, ``lease_until = now + lease``;
- **attempt** them concurrently: POST the stored body, signed now (``engine.events.signing``), through
  ``egress_client`` with a total deadline and no redirects; a 2xx answer is delivered, anything else (another
  status, a refused address, a timeout) is a failure recorded by status or stable code, never by the receiver's body;
- **finish** the outcomes in one transaction, each fenced on its claim's attempt number: ``delivered``; or
  ``pending`` again at the next point of the retry schedule (with jitter); or ``dead`` past the retry window;
- the **sweep** (``due``) marks what is due (new deliveries, due retries, expired leases) as queued and returns their
  IDs for one message; a delivery queued but never claimed (a lost message) is queued again after
  ``TETHER_EVENT_REQUEUE_AFTER_SECONDS``.

A receiver may see a delivery twice (a worker killed after the receiver answered, before the finish committed);
Standard Webhooks receivers de-duplicate on ``webhook-id``, which is the event ID on every attempt.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import anyio.to_thread
import httpx
from sqlalchemy import and_, or_, select, tuple_, update

from engine.context import EngineContext
from engine.errors import TetherError
from engine.events.endpoints import signing_secrets
from engine.events.signing import encode_body, headers
from engine.kit.egress import egress_client
from engine.observability import metrics
from engine.perloop import PerLoop
from engine.settings import Settings
from engine.store.database import Database
from engine.store.tables import EventDelivery, EventDeliveryStatus, EventEndpoint, EventOutbox, utcnow

log = logging.getLogger("tether.events")

_DELIVERY = EventDelivery.__table__  # type: ignore[attr-defined]
_ENDPOINT = EventEndpoint.__table__  # type: ignore[attr-defined]
_OUTBOX = EventOutbox.__table__  # type: ignore[attr-defined]
Status = EventDeliveryStatus
#: Bytes of a receiver's answer read at most (the body is never stored; only the status matters).
MAX_RESPONSE_BYTES = 64 * 1024
JITTER = (0.8, 1.2)


@dataclass(frozen=True)
class Claim:
    delivery_id: str
    attempts: int
    event_id: str
    payload: dict[str, Any]
    window_start: datetime
    endpoint: EventEndpoint


@dataclass(frozen=True)
class Attempt:
    delivered: bool
    status_code: int | None = None
    #: Why it failed: a stable code (docs/errors.md) and a message naming no secret and no receiver body.
    code: str = ""
    message: str = ""

    @property
    def error(self) -> str:
        return f"{self.code}: {self.message}"[:500] if self.code else ""


def retry_schedule(settings: Settings) -> list[float]:
    """``TETHER_EVENT_RETRY_SCHEDULE`` as seconds (an unreadable entry is a configuration mistake: 60 s stands in)."""
    out: list[float] = []
    for part in settings.event_retry_schedule.split(","):
        try:
            value = float(part.strip())
        except ValueError:
            value = 60.0
        out.append(max(0.0, value))
    return out or [60.0]


def next_delay(settings: Settings, attempts: int) -> float:
    """Seconds before the retry that follows attempt number ``attempts`` (1-based), with jitter."""
    schedule = retry_schedule(settings)
    return schedule[min(max(attempts, 1), len(schedule)) - 1] * random.uniform(*JITTER)


def lease_seconds(settings: Settings) -> float:
    """A lease always outlasts one attempt's deadline, so a live worker's claim never expires under it."""
    return max(settings.event_lease_seconds, settings.event_delivery_timeout_seconds + 1.0)


def _due(now: datetime, requeue_before: datetime | None = None) -> Any:
    c = _DELIVERY.c
    due = or_(
        and_(c.status == Status.pending, c.next_attempt_at <= now),
        and_(c.status == Status.sending, c.lease_until < now),
    )
    if requeue_before is None:
        return due
    return and_(due, or_(c.enqueued_at.is_(None), c.enqueued_at < requeue_before))


def due(db: Database, settings: Settings, *, limit: int = 500) -> list[str]:
    """Mark up to ``limit`` due deliveries as queued now and return their IDs (the sweep sends them)."""
    now = utcnow()
    condition = _due(now, now - timedelta(seconds=settings.event_requeue_after_seconds))
    chosen = select(_DELIVERY.c.id).where(condition).order_by(_DELIVERY.c.next_attempt_at).limit(limit)
    statement = (
        update(_DELIVERY)
        .where(_DELIVERY.c.id.in_(chosen.scalar_subquery()), condition)
        .values(enqueued_at=now)
        .returning(_DELIVERY.c.id)
    )
    with db.engine.begin() as connection:
        return [row.id for row in connection.execute(statement)]


def claim(db: Database, settings: Settings, delivery_ids: Sequence[str]) -> list[Claim]:
    """Take the due ones of ``delivery_ids`` for one attempt each, with their events and endpoints, in one
    transaction; a delivery not due (any more: delivered, dead, being sent elsewhere) is left out."""
    if not delivery_ids:
        return []
    now = utcnow()
    c = _DELIVERY.c
    statement = (
        update(_DELIVERY)
        .where(c.id.in_(list(delivery_ids)), _due(now))
        .values(
            status=Status.sending,
            attempts=c.attempts + 1,
            lease_until=now + timedelta(seconds=lease_seconds(settings)),
            enqueued_at=None,
        )
        .returning(c.id, c.attempts, c.event_id, c.endpoint_id, c.window_start)
    )
    with db.engine.begin() as connection:
        rows = connection.execute(statement).all()
        if not rows:
            return []
        event_ids = sorted({row.event_id for row in rows})
        endpoint_ids = sorted({row.endpoint_id for row in rows})
        payloads = dict(
            connection.execute(select(_OUTBOX.c.id, _OUTBOX.c.payload).where(_OUTBOX.c.id.in_(event_ids))).all()
        )
        found = connection.execute(select(_ENDPOINT).where(_ENDPOINT.c.id.in_(endpoint_ids))).all()
    targets = {row.id: EventEndpoint.model_construct(**row._mapping) for row in found}
    return [
        Claim(row.id, row.attempts, row.event_id, payloads[row.event_id], row.window_start, targets[row.endpoint_id])
        for row in rows
    ]


async def attempt(
    context: EngineContext, claimed: Claim, client: httpx.AsyncClient, secrets: dict[str, list[str]] | None = None
) -> Attempt:
    """One POST of the claimed delivery; never raises for the receiver's or the network's failure.

    ``secrets`` caches each endpoint's opened signing secrets for one batch (they are opened once per endpoint per
    message rather than once per delivery; a batch is seconds long, well inside any rotation overlap)."""
    endpoint = claimed.endpoint
    if not endpoint.enabled:
        return Attempt(False, code="endpoint_disabled", message="the endpoint was disabled")
    now = utcnow()
    body = encode_body(claimed.payload)
    opened = None if secrets is None else secrets.get(endpoint.id)
    if opened is None:
        opened = signing_secrets(context.keys.keyring, endpoint, now)
        if secrets is not None:
            secrets[endpoint.id] = opened
    signed = headers(claimed.event_id, body, opened, now)
    try:
        response = await client.post(endpoint.url, content=body.encode(), headers=signed)
    except TetherError as exc:  # egress_refused, deadline_exceeded, response_too_large: their messages hold no secret
        return Attempt(False, code=exc.code, message=exc.message)
    except httpx.HTTPError as exc:
        return Attempt(False, code="network_error", message=type(exc).__name__)
    if 200 <= response.status_code < 300:
        return Attempt(True, response.status_code)
    return Attempt(False, response.status_code, code="http_status", message=f"HTTP {response.status_code}")


def finish(db: Database, settings: Settings, done: Sequence[tuple[Claim, Attempt]]) -> dict[str, Status | None]:
    """Record each attempt, fenced on its claim, in one transaction; returns each delivery's new status (``None``
    for one whose claim was lost: its lease expired and another worker took it).

    The deliveries that succeeded with one status code share their new values, so they are one UPDATE fenced on
    ``(id, attempts)`` pairs (measured: a statement per delivery was a third of a message's database time); a
    failure's values are its own (the retry time has jitter), so each failure is a statement of its own."""
    now = utcnow()
    c = _DELIVERY.c
    results: dict[str, Status | None] = {}
    delivered: dict[int | None, list[Claim]] = {}
    with db.engine.begin() as connection:
        for claimed, outcome in done:
            if outcome.delivered:
                delivered.setdefault(outcome.status_code, []).append(claimed)
                continue
            values = _outcome_values(settings, claimed, outcome, now)
            statement = (
                update(_DELIVERY)
                .where(c.id == claimed.delivery_id, c.status == Status.sending, c.attempts == claimed.attempts)
                .values(**values)
            )
            changed = connection.execute(statement).rowcount
            results[claimed.delivery_id] = Status(values["status"]) if changed else None
        for status_code, claims in delivered.items():
            fence = [(claimed.delivery_id, claimed.attempts) for claimed in claims]
            statement = (
                update(_DELIVERY)
                .where(tuple_(c.id, c.attempts).in_(fence), c.status == Status.sending)
                .values(_outcome_values(settings, claims[0], Attempt(True, status_code), now))
                .returning(c.id)
            )
            won = {row.id for row in connection.execute(statement)}
            results.update(
                {claimed.delivery_id: Status.delivered if claimed.delivery_id in won else None for claimed in claims}
            )
    return results


def _outcome_values(settings: Settings, claimed: Claim, outcome: Attempt, now: datetime) -> dict[str, Any]:
    """Delivered; or pending until the next point of the retry schedule; or dead past the retry window."""
    values: dict[str, Any] = {"lease_until": None, "last_status_code": outcome.status_code, "last_error": outcome.error}
    if outcome.delivered:
        values.update(status=Status.delivered, delivered_at=now)
        return values
    retry_at = now + timedelta(seconds=next_delay(settings, claimed.attempts))
    window_end = claimed.window_start + timedelta(seconds=settings.event_retry_window_seconds)
    if retry_at > window_end or outcome.code == "endpoint_disabled":
        values.update(status=Status.dead)
    else:
        values.update(status=Status.pending, next_attempt_at=retry_at)
    return values


async def deliver(context: EngineContext, delivery_ids: Sequence[str]) -> dict[str, Status | None]:
    """Claim the batch, attempt its deliveries concurrently (one client), record the outcomes: two transactions per
    batch whatever its size. Returns each delivery's new status (``None``: not claimed, or the claim was lost)."""
    settings, db = context.settings, context.db
    claims = await anyio.to_thread.run_sync(claim, db, settings, list(delivery_ids))
    results: dict[str, Status | None] = dict.fromkeys(delivery_ids)
    if not claims:
        return results
    client = _client(settings.event_delivery_timeout_seconds)
    secrets: dict[str, list[str]] = {}
    outcomes = await asyncio.gather(*(attempt(context, claimed, client, secrets) for claimed in claims))
    for claimed, outcome in zip(claims, outcomes, strict=True):
        if not outcome.delivered:
            log.info("event delivery %s failed (attempt %d): %s", claimed.delivery_id, claimed.attempts, outcome.error)
    finished = await anyio.to_thread.run_sync(finish, db, settings, list(zip(claims, outcomes, strict=True)))
    for status in finished.values():
        metrics.event_delivery(_METRIC_OUTCOME.get(status, "lost") if status is not None else "lost")
    results.update(finished)
    return results


#: A finished attempt's new status as the delivery metric's outcome (``pending``: it will be tried again).
_METRIC_OUTCOME = {Status.delivered: "delivered", Status.pending: "retrying", Status.dead: "dead"}


#: One client per event loop and deadline, kept: building one loads the CA bundle (measured: 80 ms of CPU, which
#: was most of a message's cost), and its pool keeps connections to receivers alive between messages.
#: Per loop and dropped when it closes (``engine.perloop``): a client's pool holds transports of its loop.
_clients: PerLoop[dict[float, httpx.AsyncClient]] = PerLoop()


def _client(timeout: float) -> httpx.AsyncClient:
    per_loop = _clients.setdefault(dict)
    client = per_loop.get(timeout)
    if client is None or client.is_closed:
        client = egress_client(timeout=timeout, follow_redirects=False, max_response_bytes=MAX_RESPONSE_BYTES)
        per_loop[timeout] = client
    return client


def redeliver(db: Database, tenant_id: str, delivery_id: str) -> bool:
    """Make a delivery due again now (delivered, dead or waiting for a retry), with a fresh retry window; ``False``
    if it is not the tenant's or a worker is sending it right now."""
    now = utcnow()
    c = _DELIVERY.c
    statement = (
        update(_DELIVERY)
        .where(
            c.id == delivery_id,
            c.tenant_id == tenant_id,
            c.status != Status.sending,
        )
        .values(status=Status.pending, next_attempt_at=now, window_start=now, enqueued_at=None, lease_until=None)
    )
    with db.engine.begin() as connection:
        return bool(connection.execute(statement).rowcount)
