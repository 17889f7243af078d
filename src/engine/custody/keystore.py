"""Keystore: long-lived credentials, encrypted at rest, refreshed once however many callers ask.

Each credential row holds one slot of one integration, sealed with AES-256-GCM under a key ID
(``engine.custody.crypto``). The associated data names the row (``credential:{integration}:{slot}``), so a ciphertext
copied to another row does not decrypt. ``version`` goes up on every write: it keys the client cache and guards
re-wraps (compare-and-swap).

Refresh single-flight (``refresh_if_due``): one refresh per credential across coroutines, threads and processes.

1. A process-wide lock per credential lets one caller in this process through; the others wait without
   blocking their event loop (the lock is taken in a worker thread).
2. That caller takes the database lock on the credential: ``SELECT … FOR UPDATE`` on PostgreSQL, ``BEGIN
   IMMEDIATE`` (the database write lock) on SQLite, so callers in other processes wait too.
3. Under the lock it re-reads the row. If another caller refreshed meanwhile, it returns that; otherwise it calls
   the provider, writes the new credential (a rotated refresh token included) and commits *before* anyone gets the
   new access token.

On SQLite the write lock is database-wide and held for the length of one token request (bounded by the egress
timeout): acceptable for the embedded default; production uses PostgreSQL's row lock.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from sqlalchemy import Connection, delete, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, select

from engine.authoring.slots import CredentialSlot, OAuth2Token
from engine.custody import oauth
from engine.custody.crypto import KeyRing
from engine.custody.oauth import InvalidGrant, ProviderUnavailable
from engine.errors import NotFoundError
from engine.events import endpoints as event_endpoints
from engine.integrations.lifecycle import ReconnectRequired, mark_reconnect_required
from engine.kit import egress
from engine.observability import metrics, tracing
from engine.observability.logs import note_secrets, slot_secrets
from engine.perloop import PerLoop
from engine.store.database import Database
from engine.store.tables import AuthFlow, Credential, Integration, IntegrationStatus, WebhookEndpoint

S = TypeVar("S", bound=CredentialSlot)


@dataclass(frozen=True)
class StoredCredential:
    integration_id: str
    slot: CredentialSlot = field(repr=False)
    version: int
    expires_at: datetime | None
    scopes: tuple[str, ...]


def credential_aad(integration_id: str, slot_id: str) -> bytes:
    return f"credential:{integration_id}:{slot_id}".encode()


class Keystore:
    def __init__(
        self,
        db: Database,
        keyring: KeyRing,
        *,
        refresh_attempts: int = 3,
        refresh_backoff: float = 0.25,
        refresh_deadline: float | None = None,
    ) -> None:
        self.db = db
        self.keyring = keyring
        self.refresh_attempts = refresh_attempts
        self.refresh_backoff = refresh_backoff
        self.refresh_deadline = refresh_deadline
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        #: Per loop, dropped when it closes: a lock that was waited on references its loop (``engine.perloop``).
        self._loop_locks: PerLoop[dict[tuple[str, str], asyncio.Lock]] = PerLoop()
        self._locks_guard = threading.Lock()

    # -- read and write ------------------------------------------------------------------------------------------

    def save(self, integration_id: str, slot: CredentialSlot, *, session: Session | None = None) -> StoredCredential:
        """Insert or replace the credential of ``slot``'s type; pass ``session`` to commit with other writes."""
        if session is None:
            with self.db.session() as own:
                return self.save(integration_id, slot, session=own)
        slot_id = slot.slot_id()
        note_secrets(slot_secrets(slot))  # scrubbed from this context's log lines (``engine.observability.logs``)
        sealed = self.keyring.encrypt(_plaintext(slot), aad=credential_aad(integration_id, slot_id))
        expires_at, scopes = _token_facts(slot)
        now = datetime.now(UTC)
        row = session.exec(
            select(Credential).where(Credential.integration_id == integration_id, Credential.slot == slot_id)
        ).first()
        if row is None:
            row = Credential(integration_id=integration_id, slot=slot_id, key_id=sealed.key_id, ciphertext=sealed.blob)
        else:
            row.key_id, row.ciphertext, row.version = sealed.key_id, sealed.blob, row.version + 1
            row.refreshed_at = now
        row.expires_at, row.scopes, row.updated_at = expires_at, list(scopes), now
        session.add(row)
        session.flush()
        return StoredCredential(integration_id, slot, row.version, expires_at, scopes)

    def load(self, integration_id: str, slot_type: type[S]) -> StoredCredential | None:
        with self.db.session() as session:
            row = session.exec(
                select(Credential).where(
                    Credential.integration_id == integration_id, Credential.slot == slot_type.slot_id()
                )
            ).first()
        return self._open(row, slot_type) if row is not None else None

    def require(self, integration_id: str, slot_type: type[S]) -> StoredCredential:
        stored = self.load(integration_id, slot_type)
        if stored is None:
            raise NotFoundError(f"integration {integration_id} has no {slot_type.slot_id()} credential")
        return stored

    def delete(self, integration_id: str, *, session: Session | None = None) -> int:
        """Forget every credential of an integration; returns how many rows went."""
        if session is None:
            with self.db.session() as own:
                return self.delete(integration_id, session=own)
        result = session.execute(delete(Credential).where(Credential.integration_id == integration_id))  # type: ignore[arg-type]
        return int(result.rowcount or 0)

    def _open(self, row: Credential, slot_type: type[S]) -> StoredCredential:
        plain = self.keyring.decrypt(row.key_id, row.ciphertext, aad=credential_aad(row.integration_id, row.slot))
        slot = slot_type.model_validate(json.loads(plain))
        note_secrets(slot_secrets(slot))
        return StoredCredential(row.integration_id, slot, row.version, _aware(row.expires_at), tuple(row.scopes))

    # -- refresh single-flight ----------------------------------------------------------------------------------

    async def refresh_if_due(
        self,
        integration_id: str,
        slot_type: type[S],
        *,
        due: Callable[[StoredCredential], bool],
        refresh: Callable[[StoredCredential], Awaitable[CredentialSlot]],
    ) -> StoredCredential:
        """Return the credential, refreshed first if ``due`` says so, with one refresh across all callers."""
        current = self.require(integration_id, slot_type)
        if not due(current):
            return current
        key = (integration_id, slot_type.slot_id())
        attributes = {"tether.integration.id": integration_id, "tether.credential.slot": key[1]}
        with tracing.span("tether.token.refresh", attributes):
            # Coroutines of one event loop queue on an asyncio lock first, so at most one of them per loop occupies
            # a worker thread waiting for the process-wide lock (a thread pool full of waiters would starve the
            # holder).
            async with self._loop_lock(key):
                lock = self._process_lock(key)
                await anyio.to_thread.run_sync(lock.acquire)
                try:
                    return await self._refresh_locked(integration_id, slot_type, due, refresh)
                finally:
                    lock.release()

    async def _refresh_locked(
        self,
        integration_id: str,
        slot_type: type[S],
        due: Callable[[StoredCredential], bool],
        refresh: Callable[[StoredCredential], Awaitable[CredentialSlot]],
    ) -> StoredCredential:
        connection = await anyio.to_thread.run_sync(self._locked_connection)
        try:
            try:
                stored = await self._refresh_in_transaction(connection, integration_id, slot_type, due, refresh)
            except BaseException:
                await anyio.to_thread.run_sync(_finish, connection, "ROLLBACK")
                raise
            await anyio.to_thread.run_sync(_finish, connection, "COMMIT")
            if isinstance(stored, ReconnectRequired):
                raise stored
            return stored
        finally:
            await anyio.to_thread.run_sync(connection.close)

    async def _refresh_in_transaction(
        self,
        connection: Connection,
        integration_id: str,
        slot_type: type[S],
        due: Callable[[StoredCredential], bool],
        refresh: Callable[[StoredCredential], Awaitable[CredentialSlot]],
    ) -> StoredCredential | ReconnectRequired:
        """Everything between taking the lock and committing. A refused grant is *returned*, so that the status
        change it records commits before the error reaches the caller."""
        slot_id = slot_type.slot_id()
        row = await anyio.to_thread.run_sync(self._select_locked, connection, integration_id, slot_id)
        if row is None:
            raise NotFoundError(f"integration {integration_id} has no {slot_id} credential")
        status = await anyio.to_thread.run_sync(_integration_status, connection, integration_id)
        if status == IntegrationStatus.reconnect_required:
            return ReconnectRequired("the provider refused this connection's refresh token; reconnect it")
        current = self._open(row, slot_type)
        if not due(current):
            return current
        try:
            fresh = await self._with_retries(refresh, current)
        except ProviderUnavailable:
            metrics.token_refresh("transient")
            raise
        except InvalidGrant:
            metrics.token_refresh("invalid_grant")
            # Recorded under the same lock, so a caller waiting on it (here or in another process) sees
            # reconnect_required and does not try the dead refresh token again.
            await anyio.to_thread.run_sync(self._mark_refused, connection, integration_id)
            return ReconnectRequired("the provider refused this connection's refresh token; reconnect it")
        metrics.token_refresh("refreshed")
        return await anyio.to_thread.run_sync(self._write_locked, connection, row, fresh)

    async def _with_retries(
        self, refresh: Callable[[StoredCredential], Awaitable[CredentialSlot]], current: StoredCredential
    ) -> CredentialSlot:
        """Network errors and 5xx are retried a bounded number of times with backoff; nothing else is.

        All attempts together end within one token timeout (``refresh_deadline``, by default
        ``oauth.TOKEN_TIMEOUT`` read at call time): each exchange has that bound on its own, so without a shared
        one a token endpoint that trickles its answer would hold the caller (``GET /access-token``, a run)
        for every attempt's bound plus the backoff. A retry that cannot start within it is not tried.
        """
        seconds = self.refresh_deadline if self.refresh_deadline is not None else oauth.TOKEN_TIMEOUT
        with egress.deadline(seconds) as bound:
            for attempt in range(self.refresh_attempts - 1):
                try:
                    return await refresh(current)
                except ProviderUnavailable:
                    pause = self.refresh_backoff * (2**attempt)
                    if pause >= bound.remaining():
                        raise
                    await anyio.sleep(pause)
            return await refresh(current)  # the last attempt: its failure is the caller's

    def _mark_refused(self, connection: Connection, integration_id: str) -> None:
        mark_reconnect_required(
            connection,
            integration_id,
            actor="tether",
            action="token_refresh",
            reason="the provider refused the refresh token (invalid_grant)",
        )

    def _locked_connection(self) -> Connection:
        connection = self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        connection.exec_driver_sql("BEGIN IMMEDIATE" if self.db.dialect == "sqlite" else "BEGIN")
        return connection

    def _select_locked(self, connection: Connection, integration_id: str, slot_id: str) -> Credential | None:
        query = sa_select(Credential).where(Credential.integration_id == integration_id, Credential.slot == slot_id)
        if self.db.dialect != "sqlite":
            query = query.with_for_update()
        found = connection.execute(query).first()
        return Credential.model_validate(found._mapping) if found is not None else None

    def _write_locked(self, connection: Connection, row: Credential, slot: CredentialSlot) -> StoredCredential:
        sealed = self.keyring.encrypt(_plaintext(slot), aad=credential_aad(row.integration_id, row.slot))
        expires_at, scopes = _token_facts(slot)
        now = datetime.now(UTC)
        connection.execute(
            update(Credential)
            .where(Credential.id == row.id)  # type: ignore[arg-type]
            .values(
                key_id=sealed.key_id,
                ciphertext=sealed.blob,
                version=row.version + 1,
                expires_at=expires_at,
                scopes=list(scopes),
                refreshed_at=now,
                updated_at=now,
            )
        )
        return StoredCredential(row.integration_id, slot, row.version + 1, expires_at, scopes)

    def _process_lock(self, key: tuple[str, str]) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def _loop_lock(self, key: tuple[str, str]) -> asyncio.Lock:
        per_loop = self._loop_locks.setdefault(dict)
        with self._locks_guard:
            return per_loop.setdefault(key, asyncio.Lock())

    # -- key rotation --------------------------------------------------------------------------------------------

    #: The stages of ``rewrap_all``, in order (what a progress display counts).
    REWRAP_STAGES = ("credentials", "webhook endpoints", "auth flows", "event endpoints")

    def rewrap_all(self, *, batch_size: int = 200, on_stage: Callable[[str, int], None] | None = None) -> int:
        """Move every sealed value that is not under the active key onto it; safe while the engine runs.

        Each row is rewritten only if it is unchanged since it was read (same version and key ID), so a concurrent
        refresh is never overwritten; such a row was written under the active key already. ``on_stage`` is called
        after each of ``REWRAP_STAGES`` with its name and the values it moved (``tether keys rotate``'s progress).
        """
        active = self.keyring.active_key_id
        stages: tuple[Callable[[], int], ...] = (
            lambda: self._rewrap_credentials(active, batch_size),
            lambda: self._rewrap_table(WebhookEndpoint, "secret_ciphertext", active, lambda r: f"webhook:{r.id}"),
            lambda: self._rewrap_table(AuthFlow, "sealed_secrets", active, lambda r: f"auth_flow:{r.state_hash}"),
            lambda: event_endpoints.rewrap(self.db, self.keyring),
        )
        moved = 0
        for name, stage in zip(self.REWRAP_STAGES, stages, strict=True):
            count = stage()
            moved += count
            if on_stage is not None:
                on_stage(name, count)
        return moved

    def key_ids_in_use(self) -> set[str]:
        """Every key ID that still seals a stored value."""
        used: set[str] = set()
        with self.db.session() as session:
            for table in (Credential, WebhookEndpoint, AuthFlow):
                used.update(k for k in session.exec(select(table.key_id).distinct()).all() if k)
        return used | event_endpoints.key_ids_in_use(self.db)

    def _rewrap_credentials(self, active: str, batch_size: int) -> int:
        moved = 0
        while True:
            with self.db.session() as session:
                rows = session.exec(select(Credential).where(Credential.key_id != active).limit(batch_size)).all()
                progressed = 0
                for row in rows:
                    sealed = self.keyring.rewrap(
                        row.key_id, row.ciphertext, credential_aad(row.integration_id, row.slot)
                    )
                    result = session.execute(
                        update(Credential)
                        .where(
                            Credential.id == row.id, Credential.version == row.version, Credential.key_id == row.key_id
                        )  # type: ignore[arg-type]
                        .values(key_id=sealed.key_id, ciphertext=sealed.blob)
                    )
                    progressed += int(result.rowcount or 0)
            moved += progressed
            if len(rows) < batch_size:
                return moved

    def _rewrap_table(self, table: Any, column: str, active: str, aad: Callable[[Any], str]) -> int:
        moved = 0
        with self.db.session() as session:
            rows = session.exec(select(table).where(table.key_id != active, table.key_id != "")).all()
            for row in rows:
                blob = getattr(row, column)
                if not blob:
                    continue
                sealed = self.keyring.rewrap(row.key_id, blob, aad(row).encode())
                result = session.execute(
                    update(table)
                    .where(table.id == row.id, table.key_id == row.key_id)
                    .values({"key_id": sealed.key_id, column: sealed.blob})
                )
                moved += int(result.rowcount or 0)
        return moved


def _integration_status(connection: Connection, integration_id: str) -> str | None:
    row = connection.execute(sa_select(Integration.status).where(Integration.id == integration_id)).first()  # type: ignore[arg-type]
    return row.status if row is not None else None


def _finish(connection: Connection, statement: str) -> None:
    if connection.closed:
        return
    connection.exec_driver_sql(statement)


def _plaintext(slot: CredentialSlot) -> bytes:
    return json.dumps(slot.reveal(), default=_json_default, separators=(",", ":")).encode()


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot store a {type(value).__name__} in a credential")


def _token_facts(slot: CredentialSlot) -> tuple[datetime | None, tuple[str, ...]]:
    if isinstance(slot, OAuth2Token):
        return _aware(slot.expires_at), tuple(slot.scopes)
    return None, ()


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
