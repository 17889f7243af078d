"""Keymaker: short-lived auth flow state, consumed exactly once.

A flow binds a random ``state`` to (tenant, owner, integration, connection, requested scopes, return URL) and to
the session that started it. Only digests of the state and of the session are stored; the PKCE verifier and the
nonce are sealed with the key ring. At the callback the flow is consumed by one conditional ``UPDATE`` (``WHERE
consumed_at IS NULL AND expires_at > now``), so of several concurrent callbacks with the same state exactly one
wins, on SQLite and PostgreSQL alike.

One integration has at most one live flow: starting a flow supersedes every pending flow of the same integration
(their callbacks answer ``invalid_state``), and the consuming ``UPDATE`` also requires that no newer flow of the
integration exists, so two ``connect`` calls racing each other still leave only the newest one usable. Without
that, finishing an older flow after a newer one could silently put another grant in place of the current one.

Callback errors (seed 001): ``invalid_state`` (400) for a missing, unknown or reused state; ``missing_flow_state``
(400) for an expired flow or a callback that carries no session; ``session_mismatch`` (403) when the callback comes
from another session than the one that started the flow; ``oauth_failed`` (400) when the provider answered with
an ``error`` parameter (its text is never echoed).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, or_, update
from sqlalchemy.orm import aliased
from sqlmodel import select

from engine.custody.crypto import KeyRing
from engine.errors import TetherError
from engine.store.database import Database
from engine.store.tables import AuthFlow, new_id

DEFAULT_TTL = timedelta(minutes=10)


class InvalidState(TetherError):
    code = "invalid_state"
    status = 400


class MissingFlowState(TetherError):
    code = "missing_flow_state"
    status = 400


class SessionMismatch(TetherError):
    code = "session_mismatch"
    status = 403


class ProviderDenied(TetherError):
    """The provider redirected back with an ``error`` parameter."""

    code = "oauth_failed"
    status = 400


@dataclass(frozen=True)
class FlowRequest:
    """What starting a flow needs to remember until the callback."""

    tenant_id: str
    owner_id: str
    integration_id: str
    definition_id: str
    connection: str
    session_id: str
    scopes: tuple[str, ...] = ()
    return_url: str = ""


@dataclass(frozen=True)
class StartedFlow:
    """The values to put in the authorization URL. ``state`` travels only through the browser redirect."""

    flow_id: str
    state: str = field(repr=False)
    code_verifier: str = field(repr=False)
    nonce: str = field(repr=False)
    expires_at: datetime


@dataclass(frozen=True)
class ConsumedFlow:
    flow_id: str
    tenant_id: str
    owner_id: str
    integration_id: str
    definition_id: str
    connection: str
    scopes: tuple[str, ...]
    return_url: str
    code_verifier: str = field(repr=False)
    nonce: str = field(repr=False)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class Keymaker:
    def __init__(self, db: Database, keyring: KeyRing, *, ttl: timedelta = DEFAULT_TTL) -> None:
        self.db = db
        self.keyring = keyring
        self.ttl = ttl

    def start(self, request: FlowRequest, redirect: Callable[[StartedFlow], str] | None = None) -> StartedFlow:
        """Record a new flow and return its single-use state, PKCE verifier and nonce.

        ``redirect`` builds the provider URL from the flow (it needs the state); it is sealed with the flow so
        that ``launch`` can send the browser there later without the state ever being stored in the clear.
        """
        if not request.session_id:
            raise MissingFlowState("a flow must be started from a session")
        state = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(48)  # 64 characters, inside RFC 7636's 43-128
        nonce = secrets.token_urlsafe(16)
        state_hash = digest(state)
        now = datetime.now(UTC)
        draft = StartedFlow(new_id(), state, verifier, nonce, now + self.ttl)
        target = redirect(draft) if redirect is not None else ""
        sealed = self.keyring.encrypt(
            json.dumps({"code_verifier": verifier, "nonce": nonce, "redirect": target}).encode(),
            aad=_aad(state_hash),
        )
        flow = AuthFlow(
            id=draft.flow_id,
            state_hash=state_hash,
            tenant_id=request.tenant_id,
            owner_id=request.owner_id,
            integration_id=request.integration_id,
            definition_id=request.definition_id,
            connection=request.connection,
            session_hash=digest(request.session_id),
            sealed_secrets=sealed.blob,
            key_id=sealed.key_id,
            scopes=list(request.scopes),
            return_url=request.return_url,
            created_at=now,
            expires_at=draft.expires_at,
        )
        with self.db.session() as session:
            session.add(flow)
            session.flush()
            # Supersede: the older flows of this integration can no longer be finished.
            session.execute(
                update(AuthFlow)
                .where(
                    AuthFlow.integration_id == request.integration_id,
                    AuthFlow.id != draft.flow_id,
                    AuthFlow.consumed_at.is_(None),  # type: ignore[union-attr]
                )
                .values(consumed_at=now)
            )
        return draft

    def launch(self, flow_id: str, session_id: str | None) -> str:
        """The provider URL of a live flow, for the browser of the session that started it."""
        with self.db.session() as session:
            flow = session.get(AuthFlow, flow_id)
        if flow is None or flow.consumed_at is not None:
            raise InvalidState("unknown or finished flow")
        if _aware(flow.expires_at) <= datetime.now(UTC):
            raise MissingFlowState("the flow expired; start again")
        if not session_id or not secrets.compare_digest(flow.session_hash, digest(session_id)):
            raise SessionMismatch("this flow was started by another session")
        sealed = json.loads(self.keyring.decrypt(flow.key_id, flow.sealed_secrets, aad=_aad(flow.state_hash)))
        if not sealed.get("redirect"):
            raise InvalidState("this flow has no provider URL")
        return str(sealed["redirect"])

    def consume(self, *, state: str | None, session_id: str | None, error: str | None = None) -> ConsumedFlow:
        """Check a callback and consume its flow exactly once; raises the typed callback errors."""
        if not state:
            raise InvalidState("the callback has no state")
        state_hash = digest(state)
        with self.db.session() as session:
            flow = session.exec(select(AuthFlow).where(AuthFlow.state_hash == state_hash)).first()
        if flow is None:
            raise InvalidState("unknown state")
        if flow.consumed_at is not None:
            raise self._used_or_superseded(flow)
        now = datetime.now(UTC)
        if _aware(flow.expires_at) <= now:
            raise MissingFlowState("the flow expired; start again")
        if not session_id:
            raise MissingFlowState("the callback carries no flow session")
        if not secrets.compare_digest(flow.session_hash, digest(session_id)):
            raise SessionMismatch("the callback comes from another session than the one that started the flow")
        with self.db.session() as session:
            won = session.execute(
                update(AuthFlow)
                .where(
                    AuthFlow.id == flow.id,
                    AuthFlow.consumed_at.is_(None),  # type: ignore[union-attr]
                    AuthFlow.expires_at > now,
                    ~_newer_flow_exists(),
                )
                .values(consumed_at=now)
            ).rowcount
        if won != 1:
            raise self._used_or_superseded(flow)
        if error:
            denied = ProviderDenied("the provider refused the authorization")
            denied.return_url = flow.return_url  # type: ignore[attr-defined]
            raise denied
        secrets_json = json.loads(self.keyring.decrypt(flow.key_id, flow.sealed_secrets, aad=_aad(state_hash)))
        return ConsumedFlow(
            flow_id=flow.id,
            tenant_id=flow.tenant_id,
            owner_id=flow.owner_id,
            integration_id=flow.integration_id,
            definition_id=flow.definition_id,
            connection=flow.connection,
            scopes=tuple(flow.scopes),
            return_url=flow.return_url,
            code_verifier=secrets_json["code_verifier"],
            nonce=secrets_json["nonce"],
        )

    def _used_or_superseded(self, flow: AuthFlow) -> InvalidState:
        """Why a flow cannot be consumed (both are ``invalid_state``; the message tells the user what to do).

        A superseded flow sends its browser back to the flow's (checked) return URL, as a refused authorization
        does: the user left the provider expecting to land in the host app. A replayed state gets the plain error.
        """
        newer = aliased(AuthFlow)
        with self.db.session() as session:
            replaced = session.execute(
                select(newer.id).where(
                    newer.integration_id == flow.integration_id,
                    newer.id != flow.id,
                    or_(
                        newer.created_at > flow.created_at,
                        and_(newer.created_at == flow.created_at, newer.id > flow.id),
                    ),
                )
            ).first()
        if replaced is None:
            return InvalidState("this state was already used")
        superseded = InvalidState("a newer connect of this integration replaced this flow; finish that one instead")
        superseded.return_url = flow.return_url  # type: ignore[attr-defined]
        return superseded

    def purge_expired(self, *, older_than: timedelta = timedelta(days=1)) -> int:
        """Delete flows that expired long ago (consumed or not); returns how many."""
        from sqlalchemy import delete

        cutoff = datetime.now(UTC) - older_than
        with self.db.session() as session:
            return session.execute(delete(AuthFlow).where(AuthFlow.expires_at < cutoff)).rowcount  # type: ignore[arg-type]


def _newer_flow_exists() -> Any:
    """``EXISTS`` a flow of the same integration started after the outer row (ties broken by ID)."""
    newer = aliased(AuthFlow)
    return exists().where(
        newer.integration_id == AuthFlow.integration_id,
        newer.id != AuthFlow.id,
        or_(
            newer.created_at > AuthFlow.created_at,
            and_(newer.created_at == AuthFlow.created_at, newer.id > AuthFlow.id),
        ),
    )


def _aad(state_hash: str) -> bytes:
    return f"auth_flow:{state_hash}".encode()


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
