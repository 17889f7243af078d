"""The sandbox provider's state, in the database so every process (server, workers) sees the same tokens and data.

Tokens and codes are stored as SHA-256 digests (the plain value travels once, in the answer that issued it); the
webhook secrets the sandbox signs with are sealed by the key ring, like the engine's own secrets.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, LargeBinary
from sqlmodel import Field, SQLModel

from engine.store.tables import new_id, utcnow


class SandboxAccount(SQLModel, table=True):
    """One seeded provider account, and the failure scenario armed on it."""

    __tablename__ = "sandbox_account"

    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=200)
    domain: str = Field(max_length=200)
    api_key_hash: str = Field(unique=True, max_length=64)
    #: Armed scenario: the next ``fail_remaining`` API calls answer ``fail_status`` (429 with ``Retry-After``).
    fail_status: int = 0
    fail_remaining: int = 0
    fail_retry_after: int = 0


class SandboxRecord(SQLModel, table=True):
    """One record of one kind (users, groups, …) of one account; a delete keeps the row, marked deleted."""

    __tablename__ = "sandbox_record"
    __table_args__ = (Index("ix_sandbox_record_listing", "account_id", "kind", "updated_at", "id"),)

    account_id: str = Field(primary_key=True, foreign_key="sandbox_account.id", ondelete="CASCADE", max_length=32)
    kind: str = Field(primary_key=True, max_length=32)
    id: str = Field(primary_key=True, max_length=64)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    deleted: bool = False
    updated_at: datetime


class SandboxCode(SQLModel, table=True):
    """An authorization code: single use, short-lived, bound to its redirect URI and PKCE challenge."""

    __tablename__ = "sandbox_code"

    code_hash: str = Field(primary_key=True, max_length=64)
    account_id: str = Field(foreign_key="sandbox_account.id", ondelete="CASCADE", max_length=32)
    redirect_uri: str = Field(max_length=2000)
    scopes: list[str] = Field(default_factory=list, sa_type=JSON)
    code_challenge: str = Field(max_length=128)
    expires_at: datetime
    used_at: datetime | None = None
    #: The grant the code was exchanged for: a second use of the code revokes it (RFC 6749 §4.1.2).
    grant_id: str | None = Field(default=None, max_length=32)


class SandboxGrant(SQLModel, table=True):
    """One consent of one account: every token issued under it dies with it."""

    __tablename__ = "sandbox_grant"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    account_id: str = Field(foreign_key="sandbox_account.id", ondelete="CASCADE", index=True, max_length=32)
    scopes: list[str] = Field(default_factory=list, sa_type=JSON)
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None


class SandboxToken(SQLModel, table=True):
    """An access or refresh token of a grant. A rotated refresh token is kept (``rotated_at``) to detect reuse."""

    __tablename__ = "sandbox_token"

    token_hash: str = Field(primary_key=True, max_length=64)
    grant_id: str = Field(foreign_key="sandbox_grant.id", ondelete="CASCADE", index=True, max_length=32)
    #: ``access`` or ``refresh``.
    kind: str = Field(max_length=16)
    expires_at: datetime | None = None
    rotated_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class SandboxWebhook(SQLModel, table=True):
    """A webhook subscription of one account, and how its last delivery went."""

    __tablename__ = "sandbox_webhook"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    account_id: str = Field(foreign_key="sandbox_account.id", ondelete="CASCADE", index=True, max_length=32)
    url: str = Field(max_length=2000)
    key_id: str = Field(max_length=64)
    secret_ciphertext: bytes = Field(sa_type=LargeBinary)
    #: HTTP status of the last delivery; 0 when it got no answer (refused, timed out), None before any.
    last_status: int | None = None
    last_error: str = Field(default="", max_length=200)
    last_delivery_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class SandboxEvent(SQLModel, table=True):
    """A change event as sent (``webhook-id`` and body), so ``duplicate`` re-sends the very same delivery."""

    __tablename__ = "sandbox_event"
    __table_args__ = (Index("ix_sandbox_event_account_created", "account_id", "created_at"),)

    id: str = Field(primary_key=True, max_length=64)
    account_id: str = Field(foreign_key="sandbox_account.id", ondelete="CASCADE", max_length=32)
    body: bytes = Field(sa_type=LargeBinary)
    created_at: datetime = Field(default_factory=utcnow)
