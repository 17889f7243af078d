"""Token custody for consumers: short-lived access tokens out, refresh tokens never; and disconnect.

``get_access_token`` is what host-app server code (and the HTTP endpoint for server principals) calls. It answers
from a small in-process cache while the token is comfortably valid, and otherwise goes through the Keystore's
refresh single-flight. ``disconnect`` revokes at the provider when the connection declares revocation, then
forgets the credentials and marks the integration disconnected, with an audit event either way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.authoring.config import OperatorConfig
from engine.authoring.connections import ClientCredentials, ConnectionContext, NoRevocation, OAuth2
from engine.authoring.connections import Connection as ConnectionBase
from engine.authoring.definition import Definition
from engine.authoring.slots import CredentialSlot, OAuth2Token
from engine.context import EngineContext
from engine.custody.keystore import ReconnectRequired, StoredCredential
from engine.custody.oauth import OAuthClient, OAuthFailed, TokenSet, client_credentials, refresh, revoke
from engine.errors import NotFoundError, TetherError
from engine.integrations.lifecycle import audit, transition
from engine.kit.reaching import reaching
from engine.store.tables import Integration, IntegrationStatus
from engine.webhooks.endpoints import ensure_endpoints, remove_endpoints, unregister_endpoints


class NoAccessToken(TetherError):
    """The active connection has no short-lived token to hand out (a static API key, say)."""

    code = "no_access_token"
    status = 409


class RevocationFailed(TetherError):
    code = "revocation_failed"
    status = 502


@dataclass(frozen=True)
class AccessToken:
    token: str = field(repr=False)
    token_type: str
    expires_at: datetime | None
    scopes: tuple[str, ...]


class Custody:
    def __init__(
        self,
        context: EngineContext,
        *,
        refresh_margin: timedelta = timedelta(minutes=2),
        cache_seconds: float = 30.0,
    ) -> None:
        self.context = context
        self.refresh_margin = refresh_margin
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, AccessToken]] = {}
        self._minted: dict[tuple[str, int], AccessToken] = {}
        self._mint_lock = threading.Lock()

    # -- access tokens -------------------------------------------------------------------------------------------

    async def get_access_token(self, integration_id: str) -> AccessToken:
        """A valid access token for the integration's active connection, refreshed first if it is due."""
        cached = self._cache.get(integration_id)
        if cached is not None and time.monotonic() < cached[0] and self._comfortable(cached[1].expires_at):
            return cached[1]
        integration, definition, connection = self._active(integration_id)
        if integration.status == IntegrationStatus.reconnect_required:
            raise ReconnectRequired("this integration needs to be reconnected")
        auth = connection.auth
        if isinstance(auth, OAuth2):
            token = await self._oauth_token(integration, definition, auth)
        elif isinstance(auth, ClientCredentials):
            token = await self._client_credentials_token(integration, auth)
        else:
            raise NoAccessToken(f"connection {connection.connection_id()} has no short-lived access token")
        self._cache[integration_id] = (time.monotonic() + self.cache_seconds, token)
        return token

    async def renew(self, integration_id: str, refused: str) -> AccessToken:
        """Refresh once because the provider refused the access token ``refused`` before its recorded expiry (a 401:
        it expired or was cut early). Under the Keystore's refresh lock, a stored token other than ``refused`` is
        already the renewed one, so concurrent callers that were refused the same token share one refresh."""
        self._cache.pop(integration_id, None)
        integration, definition, connection = self._active(integration_id)
        if integration.status == IntegrationStatus.reconnect_required:
            raise ReconnectRequired("this integration needs to be reconnected")
        auth = connection.auth
        if not isinstance(auth, OAuth2):
            raise NoAccessToken(f"connection {connection.connection_id()} has no OAuth token to renew")

        def still_refused(stored: StoredCredential) -> bool:
            slot = stored.slot
            return isinstance(slot, OAuth2Token) and slot.access_token.get_secret_value() == refused

        token = await self._oauth_token(integration, definition, auth, due=still_refused)
        self._cache[integration_id] = (time.monotonic() + self.cache_seconds, token)
        return token

    async def _oauth_token(
        self,
        integration: Integration,
        definition: Definition,
        auth: OAuth2,
        *,
        due: Callable[[StoredCredential], bool] | None = None,
    ) -> AccessToken:
        auth = auth.at(self.context.settings.public_url)
        client = oauth_client(definition, auth, self.context.operator_config(definition.id))
        loopback = self.context.settings.allow_loopback_providers

        def expiring(stored: StoredCredential) -> bool:
            return not self._comfortable(stored.expires_at)

        due = due or expiring

        async def do_refresh(stored: StoredCredential) -> OAuth2Token:
            current = stored.slot
            assert isinstance(current, OAuth2Token)
            if current.refresh_token is None:
                raise ReconnectRequired("the access token expired and there is no refresh token; reconnect")
            granted = await refresh(auth.token_url, client, current.refresh_token.get_secret_value(), loopback=loopback)
            return token_slot(type(current), granted, previous=current)

        stored = await self.context.keystore.refresh_if_due(integration.id, auth.slot, due=due, refresh=do_refresh)
        slot = stored.slot
        assert isinstance(slot, OAuth2Token)
        return AccessToken(slot.access_token.get_secret_value(), slot.token_type, slot.expires_at, tuple(slot.scopes))

    async def _client_credentials_token(self, integration: Integration, auth: ClientCredentials) -> AccessToken:
        stored = self.context.keystore.require(integration.id, auth.slot)
        key = (integration.id, stored.version)
        minted = self._minted.get(key)
        if minted is not None and self._comfortable(minted.expires_at):
            return minted
        values: dict[str, Any] = stored.slot.reveal()
        client = OAuthClient(values["client_id"], values["client_secret"])
        granted = await client_credentials(
            auth.token_url, client, auth.scopes, loopback=self.context.settings.allow_loopback_providers
        )
        token = AccessToken(granted.access_token, granted.token_type, granted.expires_at, granted.scopes)
        with self._mint_lock:
            self._minted = {k: v for k, v in self._minted.items() if k[0] != integration.id}
            self._minted[key] = token
        return token

    def _comfortable(self, expires_at: datetime | None) -> bool:
        return expires_at is None or expires_at - self.refresh_margin > datetime.now(UTC)

    def forget(self, integration_id: str) -> None:
        """Drop cached tokens (after a disconnect or a new credential)."""
        self._cache.pop(integration_id, None)
        with self._mint_lock:
            self._minted = {k: v for k, v in self._minted.items() if k[0] != integration_id}

    # -- disconnect ----------------------------------------------------------------------------------------------

    async def disconnect(self, integration_id: str, *, actor: str) -> str:
        """Revoke (when declared), forget the credentials, mark the integration disconnected. Returns a note for
        the user: empty after a revocation, the definition's instructions when the provider has none."""
        integration, definition, connection = self._active(integration_id)
        note = ""
        if isinstance(connection.disconnect, NoRevocation):
            note = connection.disconnect.reason
        else:
            # Unsubscribe first: the provider may need the very credential the revocation ends to accept it.
            await unregister_endpoints(self.context, integration)
            try:
                await self._revoke(integration, definition, connection)
            except TetherError as exc:
                await self._resubscribe(integration)
                with self.context.db.session() as session:
                    audit(
                        session,
                        integration,
                        actor=actor,
                        action="disconnect",
                        outcome="failed",
                        detail={"step": "revoke", "code": exc.code},
                    )
                raise RevocationFailed("the provider did not confirm the revocation; nothing was deleted") from None
        await self._forget_connection(
            integration,
            actor=actor,
            reason="",
            detail={
                "connection": connection.connection_id(),
                "revoked": not isinstance(connection.disconnect, NoRevocation),
            },
        )
        return note

    async def _resubscribe(self, integration: Integration) -> None:
        """The revocation failed, so the integration stays connected: register its webhooks again (best effort)."""
        try:
            await ensure_endpoints(self.context, integration)
        except TetherError as exc:
            with self.context.db.session() as session:
                audit(
                    session,
                    integration,
                    actor="tether",
                    action="webhooks_reconciled",
                    outcome="failed",
                    detail={"code": exc.code},
                )

    async def release(self, integration_id: str, *, actor: str, reason: str) -> None:
        """The provider already ended access (an app was uninstalled): forget everything, revoke nothing."""
        with self.context.db.session() as session:
            integration = session.get(Integration, integration_id)
        if integration is None or integration.status == IntegrationStatus.disconnected:
            return
        await self._forget_connection(
            integration, actor=actor, reason=reason, detail={"revoked": False, "by": "provider"}
        )

    async def _forget_connection(
        self, integration: Integration, *, actor: str, reason: str, detail: dict[str, Any]
    ) -> None:
        """The local half of every disconnect: retire webhook endpoints (while the credential still exists, since
        unregistering at the provider may need it), delete credentials, mark disconnected, audit, drop caches."""
        await remove_endpoints(self.context, integration)
        with self.context.db.session() as session:
            fresh = session.get(Integration, integration.id)
            if fresh is None:
                raise NotFoundError(f"no integration {integration.id}")
            self.context.keystore.delete(integration.id, session=session)
            fresh.provider_data = {}
            transition(
                session,
                fresh,
                IntegrationStatus.disconnected,
                actor=actor,
                action="disconnect",
                reason=reason,
                detail=detail,
            )
        self.forget(integration.id)
        self.context.clients.drop(integration.id)

    async def _revoke(self, integration: Integration, definition: Definition, connection: type[ConnectionBase]) -> None:
        slot_type = connection.disconnect.slot  # type: ignore[union-attr]
        stored = self.context.keystore.load(integration.id, slot_type)
        if stored is None:
            return  # nothing held, nothing to revoke
        await self._revoke_slot(
            integration,
            definition,
            connection,
            stored.slot,
            lambda: self.context.build_client(integration, connection, stored),
        )

    async def discard_grant(
        self,
        integration: Integration,
        definition: Definition,
        connection: type[ConnectionBase],
        slot: CredentialSlot,
        make_client: Callable[[], Any],
    ) -> bool:
        """Revoke an OAuth grant that a flow just obtained and that will not be saved (it resolved another account
        than the integration's). Returns whether anything was revoked.

        Only grants the flow itself created are revoked: a typed-in key or an app installation may predate the flow
        and serve others, so those are left alone (there is nothing of ours to undo).
        """
        if not isinstance(connection.auth, OAuth2) or isinstance(connection.disconnect, NoRevocation):
            return False
        await self._revoke_slot(integration, definition, connection, slot, make_client)
        return True

    async def _revoke_slot(
        self,
        integration: Integration,
        definition: Definition,
        connection: type[ConnectionBase],
        slot: CredentialSlot,
        make_client: Callable[[], Any],
    ) -> None:
        """RFC 7009 at the OAuth2 ``revoke_url``, or the connection's own ``revoke`` with a client for ``slot``."""
        auth = connection.auth
        operator_config = self.context.operator_config(definition.id)
        loopback = self.context.settings.allow_loopback_providers
        if isinstance(auth, OAuth2):
            auth = auth.at(self.context.settings.public_url)
        if isinstance(auth, OAuth2) and auth.revoke_url and not connection.overrides("revoke"):
            assert isinstance(slot, OAuth2Token)
            client = oauth_client(definition, auth, operator_config)
            if slot.refresh_token is not None:
                await revoke(auth.revoke_url, client, slot.refresh_token.get_secret_value(), loopback=loopback)
            try:
                await revoke(
                    auth.revoke_url,
                    client,
                    slot.access_token.get_secret_value(),
                    token_type_hint="access_token",
                    loopback=loopback,
                )
            except OAuthFailed as exc:
                # Revoking the refresh token ended its grant's access tokens too (RFC 7009 section 2.1), and some
                # providers (Google) then answer the access token's revocation 400 invalid_token where the RFC says
                # 200 (section 2.2): the token is gone either way, so the disconnect is done.
                if slot.refresh_token is None or exc.error != "invalid_token":
                    raise
            return
        ctx = ConnectionContext(
            integration.id, slot, make_client(), operator_config, self.context.user_input(integration)
        )
        await reaching("the provider's revocation", lambda: connection().revoke(ctx))

    # -- lookups -------------------------------------------------------------------------------------------------

    def _active(self, integration_id: str) -> tuple[Integration, Definition, type[ConnectionBase]]:
        with self.context.db.session() as session:
            integration = session.get(Integration, integration_id)
        if integration is None:
            raise NotFoundError(f"no integration {integration_id}")
        definition = self.context.definition(integration.definition_id)
        name = (integration.provider_data or {}).get("connection", "")
        connection = definition.connection(name)
        if connection is None:
            raise NotFoundError(f"integration {integration_id} has no active connection")
        return integration, definition, connection


def oauth_client(definition: Definition, auth: OAuth2, config: OperatorConfig | None) -> OAuthClient:
    """The registered OAuth client of a definition, from the operator config fields the auth names."""
    if config is None:
        raise NotFoundError(f"{definition.id} has no operator config")
    return OAuthClient(
        client_id=_plain(getattr(config, auth.client_id)),
        client_secret=_plain(getattr(config, auth.client_secret, None)),
    )


def _plain(value: object) -> str | None:
    """An operator value as text, revealing ``SecretStr`` (a client ID may be configured as a secret too)."""
    if value is None:
        return None
    reveal = getattr(value, "get_secret_value", None)
    return str(reveal() if reveal is not None else value)


def token_slot(slot_type: type[OAuth2Token], granted: TokenSet, *, previous: OAuth2Token | None = None) -> OAuth2Token:
    """A slot value from a token answer; a refresh that returns no new refresh token keeps the old one."""
    refresh_token = granted.refresh_token
    if refresh_token is None and previous is not None and previous.refresh_token is not None:
        refresh_token = previous.refresh_token.get_secret_value()
    return slot_type.model_validate(
        {
            "access_token": granted.access_token,
            "refresh_token": refresh_token,
            "token_type": granted.token_type or "Bearer",
            "expires_at": granted.expires_at,
            "scopes": granted.scopes or (previous.scopes if previous else ()),
        }
    )
