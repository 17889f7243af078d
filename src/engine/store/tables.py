"""The engine's own tables (DESIGN.md §3).

Each table changes at its own rate and for its own reason: an integration when it is configured or connected, a
credential when it is rotated or refreshed, an auth flow within minutes. The unique constraints are what make
idempotency possible: one credential per (integration, slot), one delivery ID per webhook endpoint, one state per
auth flow. Secrets are stored only as ciphertext (``credential.ciphertext``, ``webhook_endpoint.secret_ciphertext``).
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, LargeBinary, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class IntegrationStatus(StrEnum):
    pending = "pending"
    connected = "connected"
    reconnect_required = "reconnect_required"
    error = "error"
    disconnected = "disconnected"


class Health(StrEnum):
    valid = "valid"
    invalid = "invalid"
    unknown = "unknown"


class RunStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    #: Terminal: the run stopped short of its end with nothing wrong on our side it could report as done (its
    #: worker stopped heart-beating, it made no progress for its stall window, or the provider's pagination ended
    #: before the provider's own count or cursor said it would); ``error_code`` says which. Never ``succeeded``.
    stalled = "stalled"


class DeliveryStatus(StrEnum):
    received = "received"
    processed = "processed"
    failed = "failed"
    duplicate = "duplicate"
    unrouted = "unrouted"


class Integration(SQLModel, table=True):
    """One tenant + owner's connection to one definition."""

    __tablename__ = "integration"
    __table_args__ = (UniqueConstraint("tenant_id", "owner_id", "definition_id"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    tenant_id: str = Field(index=True, max_length=200)
    owner_id: str = Field(max_length=200)
    definition_id: str = Field(index=True, max_length=100)
    name: str = Field(default="", max_length=200)
    status: IntegrationStatus = Field(default=IntegrationStatus.pending, sa_type=String(32))
    health: Health = Field(default=Health.unknown, sa_type=String(16))
    user_input: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    #: The active connection (``{"connection": "<ConnectionClass>"}``) and provider routing keys.
    provider_data: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    #: Who or what we connected to (``IntegrationMetadata``); ``metadata`` is reserved by SQLAlchemy.
    account: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    #: Tenant-level CEL filter applied before the definition's own filters.
    filter_expr: str = Field(default="", sa_type=Text)
    status_reason: str = Field(default="", max_length=500)
    #: Bumped on every update: optimistic concurrency for lifecycle transitions.
    version: int = Field(default=1)
    connected_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Credential(SQLModel, table=True):
    """One encrypted credential of one integration's slot."""

    __tablename__ = "credential"
    __table_args__ = (UniqueConstraint("integration_id", "slot"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    integration_id: str = Field(foreign_key="integration.id", ondelete="CASCADE", index=True, max_length=32)
    slot: str = Field(max_length=200)
    key_id: str = Field(max_length=64)
    ciphertext: bytes = Field(sa_type=LargeBinary)
    #: Bumped on every rotation or refresh: compare-and-swap guard and client-cache key.
    version: int = Field(default=1)
    expires_at: datetime | None = None
    scopes: list[str] = Field(default_factory=list, sa_type=JSON)
    refreshed_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class AuthFlow(SQLModel, table=True):
    """Keymaker state for one auth flow: single use, short-lived."""

    __tablename__ = "auth_flow"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    #: Stored as a SHA-256 digest; the raw state only travels in the redirect.
    state_hash: str = Field(unique=True, max_length=64)
    tenant_id: str = Field(max_length=200)
    owner_id: str = Field(max_length=200)
    integration_id: str = Field(foreign_key="integration.id", ondelete="CASCADE", index=True, max_length=32)
    definition_id: str = Field(max_length=100)
    connection: str = Field(max_length=200)
    session_hash: str = Field(max_length=64)
    #: PKCE verifier and nonce, sealed by the Keystore's key ring.
    sealed_secrets: bytes = Field(default=b"", sa_type=LargeBinary)
    key_id: str = Field(default="", max_length=64)
    scopes: list[str] = Field(default_factory=list, sa_type=JSON)
    return_url: str = Field(default="", sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    consumed_at: datetime | None = None


class WebhookEndpoint(SQLModel, table=True):
    """A public delivery URL for one integration's webhook."""

    __tablename__ = "webhook_endpoint"
    __table_args__ = (UniqueConstraint("integration_id", "webhook"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    integration_id: str = Field(foreign_key="integration.id", ondelete="CASCADE", index=True, max_length=32)
    webhook: str = Field(max_length=200)
    token: str = Field(default_factory=lambda: secrets.token_urlsafe(32), unique=True, max_length=64)
    key_id: str = Field(default="", max_length=64)
    secret_ciphertext: bytes | None = Field(default=None, sa_type=LargeBinary)
    provider_ref: str = Field(default="", max_length=500)
    registered_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class WebhookDelivery(SQLModel, table=True):
    """One inbound delivery: recorded with its processing intent before it is acknowledged."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "delivery_id"),
        Index("ix_webhook_delivery_integration_received", "integration_id", "received_at"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    endpoint_id: str = Field(foreign_key="webhook_endpoint.id", ondelete="CASCADE", max_length=32)
    integration_id: str | None = Field(default=None, max_length=32)
    #: The provider's delivery ID, or a content hash when the provider sends none.
    delivery_id: str = Field(max_length=200)
    event_type: str = Field(default="", max_length=200)
    status: DeliveryStatus = Field(default=DeliveryStatus.received, sa_type=String(16))
    body: bytes = Field(default=b"", sa_type=LargeBinary)
    headers: dict[str, str] = Field(default_factory=dict, sa_type=JSON)
    error_code: str = Field(default="", max_length=100)
    error_message: str = Field(default="", max_length=1000)
    attempts: int = 0
    received_at: datetime = Field(default_factory=utcnow)
    processed_at: datetime | None = None


class UnroutedDelivery(SQLModel, table=True):
    """A verified delivery to an app-wide webhook that matched no integration: kept (with why) and counted, never
    processed. ``GET /v1/unrouted-deliveries`` lists them."""

    __tablename__ = "unrouted_delivery"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    definition_id: str = Field(max_length=200, index=True)
    webhook: str = Field(max_length=200)
    #: ``no_route`` (the webhook's ``route()`` found nothing to match on) or ``no_integration`` (nothing matched).
    reason: str = Field(max_length=100)
    body: bytes = Field(sa_type=LargeBinary)
    headers: dict[str, str] = Field(default_factory=dict, sa_type=JSON)
    received_at: datetime = Field(default_factory=utcnow, index=True)


class WebhookSubscription(SQLModel, table=True):
    """A subscription held at the provider for one endpoint (a Microsoft Graph subscription on ``users``): created
    at the first connection, renewed before ``expires_at`` by the scheduler, deleted on disconnect.

    One row per (endpoint, key), inserted before the provider is called, so a restarted or concurrent worker finds
    the row instead of subscribing twice; ``fence`` orders claims on it.
    """

    __tablename__ = "webhook_subscription"
    __table_args__ = (UniqueConstraint("endpoint_id", "key"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    endpoint_id: str = Field(foreign_key="webhook_endpoint.id", ondelete="CASCADE", index=True, max_length=32)
    integration_id: str = Field(foreign_key="integration.id", ondelete="CASCADE", index=True, max_length=32)
    #: The webhook's name for what is subscribed (``Webhook.subscriptions``), e.g. ``users``.
    key: str = Field(max_length=200)
    #: The provider's ID of the subscription ("" until created).
    provider_id: str = Field(default="", max_length=500, index=True)
    #: ``pending`` (being created), ``active``, ``removed`` (gone at the provider: to be created again), ``failed``.
    status: str = Field(default="pending", max_length=20)
    expires_at: datetime | None = None
    #: Renew at the next scheduler pass whatever ``expires_at`` says (the provider asked: ``reauthorizationRequired``).
    renew_requested: bool = False
    fence: int = 0
    error_code: str = Field(default="", max_length=100)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Run(SQLModel, table=True):
    """One execution of one operation, whatever triggered it."""

    __tablename__ = "run"
    __table_args__ = (Index("ix_run_integration_queued", "integration_id", "queued_at"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    integration_id: str = Field(foreign_key="integration.id", ondelete="CASCADE", max_length=32)
    tenant_id: str = Field(index=True, max_length=200)
    operation: str = Field(max_length=200)
    trigger: str = Field(max_length=32)
    status: RunStatus = Field(default=RunStatus.queued, sa_type=String(16), index=True)
    config: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    result: Any | None = Field(default=None, sa_type=JSON)
    attempts: int = 0
    delivery_id: str | None = Field(default=None, max_length=32)
    payloads_out: int = 0
    records_ingested: int = 0
    records_filtered: int = 0
    records_rejected: int = 0
    error_code: str = Field(default="", max_length=100)
    error_message: str = Field(default="", max_length=1000)
    queued_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None
    #: Where an ingest run's next attempt resumes (the last ``Checkpoint`` it yielded after persisting a page).
    checkpoint: Any | None = Field(default=None, sa_type=JSON)


class IngestReject(SQLModel, table=True):
    """A record that failed filtering, mapping or validation, kept with the reason."""

    __tablename__ = "ingest_reject"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    run_id: str | None = Field(default=None, foreign_key="run.id", ondelete="CASCADE", index=True, max_length=32)
    delivery_id: str | None = Field(default=None, max_length=32)
    integration_id: str = Field(max_length=32)
    position: int
    schema_name: str = Field(max_length=100)
    variant: str = Field(default="", max_length=100)
    reason_code: str = Field(max_length=100)
    reason: str = Field(max_length=1000)
    record: Any | None = Field(default=None, sa_type=JSON)
    created_at: datetime = Field(default_factory=utcnow)


class AuditEvent(SQLModel, table=True):
    """Every lifecycle change of an integration: who, what, when. Never secrets."""

    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_event_integration_created", "integration_id", "created_at"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    tenant_id: str = Field(max_length=200)
    integration_id: str | None = Field(default=None, max_length=32)
    actor: str = Field(default="", max_length=200)
    action: str = Field(max_length=100)
    outcome: str = Field(default="ok", max_length=32)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    created_at: datetime = Field(default_factory=utcnow)


class ApiKey(SQLModel, table=True):
    """A host-app credential for the HTTP API, stored as a SHA-256 digest; the key itself is shown once."""

    __tablename__ = "api_key"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    tenant_id: str = Field(index=True, max_length=200)
    #: ``server`` (the host app's back end: every owner in the tenant) or ``user`` (one owner).
    role: str = Field(max_length=16)
    owner_id: str = Field(default="", max_length=200)
    name: str = Field(default="", max_length=200)
    key_hash: str = Field(unique=True, max_length=64)
    #: The first characters of the key, so a person can tell keys apart without the secret.
    prefix: str = Field(max_length=16)
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None


class OperationState(SQLModel, table=True):
    """Per (integration, operation): the incremental-sync cursor and the schedule."""

    __tablename__ = "operation_state"
    __table_args__ = (UniqueConstraint("integration_id", "operation"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    integration_id: str = Field(foreign_key="integration.id", ondelete="CASCADE", max_length=32)
    operation: str = Field(max_length=200)
    #: The provider cursor the next run starts from; advanced only when a run succeeds.
    cursor: Any | None = Field(default=None, sa_type=JSON)
    last_success_at: datetime | None = None
    last_run_id: str | None = Field(default=None, max_length=32)
    #: When the scheduler should enqueue the next run (``None``: not scheduled).
    next_due_at: datetime | None = Field(default=None, index=True)
    #: Fencing token: bumped by each scheduler claim, so a stale scheduler's write is refused.
    fence: int = 0
    updated_at: datetime = Field(default_factory=utcnow)


class ChangeCounter(SQLModel, table=True):
    """Per tenant: the last change-feed sequence handed out (``engine.store.changes``).

    Updated as the last statement before a write transaction commits, so it also serialises the commits of one
    tenant's change-recording writers: sequences become visible in order, with no gap that fills later.
    """

    __tablename__ = "change_counter"

    tenant_id: str = Field(primary_key=True, max_length=200)
    last_seq: int = Field(default=0, sa_type=BigInteger)
    #: The last sequence retention deleted (``engine.store.retention``): a reader after a lower one missed changes.
    pruned_through: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs={"server_default": "0"})


class RecordChange(SQLModel, table=True):
    """One upsert or removal of an ingest record, in the tenant's change feed (``GET /v1/changes``)."""

    __tablename__ = "record_change"
    __table_args__ = (Index("ix_record_change_tenant_integration_seq", "tenant_id", "integration_id", "seq"),)

    tenant_id: str = Field(primary_key=True, max_length=200)
    #: Strictly increasing per tenant, committed in order.
    seq: int = Field(primary_key=True, sa_type=BigInteger)
    schema_name: str = Field(max_length=100)
    #: The record's ``id`` in its model's table.
    record_id: int = Field(sa_type=BigInteger)
    integration_id: str = Field(max_length=32)
    #: ``upsert`` or ``remove``.
    op: str = Field(max_length=8)
    #: The record's state after the change (``record_state``); ``None`` for a removal (a tombstone).
    record: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    changed_at: datetime = Field(default_factory=utcnow)


class EventDeliveryStatus(StrEnum):
    pending = "pending"
    sending = "sending"
    delivered = "delivered"
    dead = "dead"


class EventEndpoint(SQLModel, table=True):
    """A host app's URL receiving signed outbound events (``engine.events``); its secrets are sealed.

    ``secret_generation`` names the sealing AAD of the current secret (``event_endpoint:{id}:{generation}``); after a
    rotation the previous one keeps its own AAD (generation - 1) and signs alongside until ``previous_expires_at``.
    """

    __tablename__ = "event_endpoint"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    tenant_id: str = Field(index=True, max_length=200)
    url: str = Field(sa_type=Text)
    event_types: list[str] = Field(default_factory=list, sa_type=JSON)
    description: str = Field(default="", max_length=500)
    enabled: bool = True
    secret_generation: int = 1
    key_id: str = Field(max_length=64)
    secret_ciphertext: bytes = Field(sa_type=LargeBinary)
    previous_key_id: str = Field(default="", max_length=64)
    previous_secret_ciphertext: bytes | None = Field(default=None, sa_type=LargeBinary)
    previous_expires_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class EventOutbox(SQLModel, table=True):
    """One outbound event, written in the transaction of the state change that caused it."""

    __tablename__ = "event_outbox"
    __table_args__ = (Index("ix_event_outbox_tenant_created", "tenant_id", "created_at"),)

    #: ``msg_…``: the Standard Webhooks ``webhook-id``, stable across retries and redeliveries.
    id: str = Field(primary_key=True, max_length=40)
    tenant_id: str = Field(max_length=200)
    event_type: str = Field(max_length=100)
    #: The body as sent: ``{"type", "timestamp", "data"}``.
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    created_at: datetime = Field(default_factory=utcnow)


class EventDelivery(SQLModel, table=True):
    """One event to one endpoint: its attempts, its lease while a worker sends it, its outcome."""

    __tablename__ = "event_delivery"
    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id"),
        Index("ix_event_delivery_due", "status", "next_attempt_at"),
        Index("ix_event_delivery_tenant_created", "tenant_id", "created_at", "id"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    event_id: str = Field(foreign_key="event_outbox.id", ondelete="CASCADE", index=True, max_length=40)
    endpoint_id: str = Field(foreign_key="event_endpoint.id", ondelete="CASCADE", index=True, max_length=32)
    tenant_id: str = Field(max_length=200)
    event_type: str = Field(max_length=100)
    status: EventDeliveryStatus = Field(default=EventDeliveryStatus.pending, sa_type=String(16))
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    #: While ``sending``: the worker's claim expires then, and a sweep queues the delivery again.
    lease_until: datetime | None = None
    #: When a sweep last sent its message (so several sweepers do not queue it twice).
    enqueued_at: datetime | None = None
    last_status_code: int | None = None
    last_error: str = Field(default="", max_length=500)
    #: The retry window runs from here: the event's creation, or the last manual redelivery.
    window_start: datetime = Field(default_factory=utcnow)
    created_at: datetime = Field(default_factory=utcnow)
    delivered_at: datetime | None = None
