"""Setup reconciliation: the ten steps every credential walks through, however it arrives (DESIGN.md §4).

1 resolve or create the integration · 2 validate and persist user input · 3 resolve the connection · 4 run the
auth flow (start, redirect, callback) · 5 validate the credential against its slot · 6 run the validation
operation as a health check · 7 save the credential · 8 persist the active connection · 9 resolve and save the
integration metadata · 10 on the first successful connection (and the first after a disconnect, which retired the
webhook endpoints and cleared the schedules), create webhook endpoints and dispatch reconcile-eligible operations.

Direct input (``submit_credential``), the OAuth callback and the app-install callback (``callback``) all end in
``_complete``, which runs steps 5-10. Steps 6 and 9 talk to the provider *before* anything is written, and steps
7-9 commit in one transaction, so a failure at any step leaves the previous good state as it was; the failure is
recorded as an audit event and raised as a typed error.

Two rules keep a connection from changing hands by accident. A credential that resolves (step 9) a different
external account than the one the integration is connected to is refused with ``account_mismatch`` (409); an
OAuth grant the refused flow obtained is revoked at once, so neither the old grant is replaced nor the new one left
live. To connect another account, disconnect first. And a provider that cannot be reached or does not answer in
time, at any step that calls it, is ``provider_unavailable`` (502) and leaves a ``status_reason`` on the
integration, never an ``internal_error``.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from engine.authoring.connections import (
    AppInstall,
    ClientCredentials,
    ConnectionContext,
    IntegrationMetadata,
    OAuth2,
    granted_products,
)
from engine.authoring.connections import Connection as ConnectionBase
from engine.authoring.definition import Definition
from engine.authoring.operations import OperationContext
from engine.authoring.slots import CredentialSlot
from engine.custody.keymaker import ConsumedFlow, FlowRequest, StartedFlow
from engine.custody.keystore import ReconnectRequired, StoredCredential
from engine.custody.oauth import ProviderUnavailable, authorization_url, exchange_code
from engine.custody.tokens import oauth_client, token_slot
from engine.errors import NotFoundError, ProviderError, ProviderNotEnabled, TetherError, ValidationFailed
from engine.integrations.lifecycle import audit, transition
from engine.kit.reaching import reaching
from engine.observability import tracing
from engine.services import Services
from engine.store.tables import Credential, Health, Integration, IntegrationStatus

if TYPE_CHECKING:
    from engine.api.principal import Principal

CALLBACK_PATH = "/v1/oauth/callback"
START_PATH = "/v1/oauth/start"


class SetupFailed(TetherError):
    """A setup step failed; nothing was changed."""

    code = "setup_failed"
    status = 400


class CredentialRejected(SetupFailed):
    """The provider refused the credential during the health check."""

    code = "credential_rejected"
    status = 422


class ConnectionRequired(SetupFailed):
    code = "connection_required"
    status = 400


class ReturnUrlRefused(SetupFailed):
    code = "return_url_refused"
    status = 400


class AccountMismatch(SetupFailed):
    """The credential belongs to another external account than the one the integration is connected to."""

    code = "account_mismatch"
    status = 409

    def __init__(self, connected: str, offered: str) -> None:
        super().__init__(
            "this integration is connected to another account at the provider; "
            "disconnect it first to connect a different account"
        )
        self.connected = connected
        self.offered = offered


class UnknownProduct(SetupFailed):
    """A connect or upgrade named a product the connection does not declare."""

    code = "unknown_product"
    status = 422


class FilterNotAllowed(TetherError):
    """Only the host app's server sets an integration's tenant filter (``filter_expr``)."""

    code = "forbidden"
    status = 403


class Setup:
    def __init__(self, runtime: Services) -> None:
        self.runtime = runtime

    # -- steps 1 and 2: the integration and its user input -----------------------------------------------------

    def configure(
        self,
        principal: Principal,
        definition_id: str,
        *,
        owner_id: str = "",
        user_input: dict[str, Any] | None = None,
        name: str = "",
    ) -> Integration:
        """Find or create the principal's integration of a definition and store its user input."""
        definition = self.runtime.definition(definition_id)
        owner = principal.owner_id if not principal.is_server else owner_id
        if not owner:
            raise ValidationFailed(
                "owner_id is required when a server principal creates an integration", code="missing_field", status=400
            )
        values = self._user_input(definition, user_input)
        with self.runtime.db.session() as session:
            found = session.exec(
                select(Integration).where(
                    Integration.tenant_id == principal.tenant_id,
                    Integration.owner_id == owner,
                    Integration.definition_id == definition_id,
                )
            ).first()
            integration = found or Integration(
                tenant_id=principal.tenant_id, owner_id=owner, definition_id=definition_id
            )
            if values is not None:
                integration.user_input = values
            integration.name = name or integration.name or definition.name
            session.add(integration)
            try:
                session.flush()
            except IntegrityError:  # a concurrent create won: use that row
                session.rollback()
                return self.configure(principal, definition_id, owner_id=owner, user_input=user_input, name=name)
            audit(
                session,
                integration,
                actor=_actor(principal),
                action="configure",
                detail={"created": found is None, "user_input_fields": sorted((values or {}).keys())},
            )
        return integration

    def update(
        self,
        principal: Principal,
        integration_id: str,
        *,
        user_input: dict[str, Any] | None = None,
        name: str | None = None,
        filter_expr: str | None = None,
    ) -> Integration:
        """Change user input, name or the tenant filter; a bad filter is refused before it is saved.

        The filter decides which records of the integration are kept for the whole tenant, and it runs on the
        workers that run every tenant's operations: it is the host app's server's to set, never a user's.
        """
        from ingest.pipeline import compile_integration_filter

        integration = self.get(principal, integration_id)
        if filter_expr is not None and not principal.is_server:
            raise FilterNotAllowed("filter_expr may only be set by the host app's server")
        definition = self.runtime.registry.get(integration.definition_id)
        values = self._user_input(definition, user_input)
        if filter_expr is not None:
            compile_integration_filter(filter_expr)
        with self.runtime.db.session() as session:
            row = session.get(Integration, integration.id)
            assert row is not None
            changed = []
            if values is not None:
                row.user_input, changed = values, [*changed, "user_input"]
            if name is not None:
                row.name, changed = name, [*changed, "name"]
            if filter_expr is not None:
                row.filter_expr, changed = filter_expr, [*changed, "filter_expr"]
            row.version += 1
            session.add(row)
            audit(session, row, actor=_actor(principal), action="update", detail={"changed": changed})
        self.runtime.clients.drop(integration.id)
        return row

    def get(self, principal: Principal, integration_id: str) -> Integration:
        """The integration if this principal may see it; ``not_found`` otherwise (no existence leak)."""
        with self.runtime.db.session() as session:
            integration = session.get(Integration, integration_id)
        if integration is None or not principal.can_see(integration):
            raise NotFoundError("no such integration")
        return integration

    def _user_input(self, definition: Definition, values: dict[str, Any] | None) -> dict[str, Any] | None:
        if values is None and definition.user_input is None:
            return None
        if definition.user_input is None:
            if values:
                raise ValidationFailed(f"{definition.id} takes no user input")
            return None
        try:
            return definition.user_input.model_validate(values or {}).model_dump(mode="json")
        except ValidationError as exc:
            raise ValidationFailed(_fields_message("user input", exc)) from None

    # -- direct input of a manual slot ----------------------------------------------------------------------------

    async def submit_credential(
        self, principal: Principal, integration_id: str, slot_id: str, data: dict[str, Any]
    ) -> Integration:
        integration = self.get(principal, integration_id)
        definition = self.runtime.definition(integration.definition_id)
        connection = next(
            (
                c
                for c in definition.connections
                if c.credential.slot_id() == slot_id and (c.auth is None or isinstance(c.auth, ClientCredentials))
            ),
            None,
        )
        if connection is None:
            raise ConnectionRequired(f"{slot_id} is not a credential a person can enter for {definition.id}")
        self._check_offered(definition, connection)
        try:
            slot = connection.credential.model_validate(data)
        except ValidationError as exc:
            self._audit_failure(integration, principal, "credential_invalid", step=5)
            raise CredentialInvalid(_fields_message("credential", exc), fields=field_errors(exc)) from None
        return await self._complete(integration, definition, connection, slot, actor=_actor(principal))

    # -- step 4: auth flows --------------------------------------------------------------------------------------

    def begin(
        self,
        principal: Principal,
        integration_id: str,
        *,
        connection_id: str | None = None,
        return_url: str = "",
        upgrade: bool = False,
        product: str | None = None,
    ) -> str:
        """Start an OAuth or app-install flow; returns the URL to send the user's browser to.

        ``product`` (a ``Product`` of the connection) adds that product's scopes. On a connection with products, the
        scopes the stored grant already holds are asked for again too, so an upgrade never narrows the grant
        (Google keeps them anyway with ``include_granted_scopes``; other servers issue exactly what is asked).
        """
        integration = self.get(principal, integration_id)
        definition = self.runtime.definition(integration.definition_id)
        connection = self._flow_connection(
            definition, connection_id or (integration.provider_data or {}).get("connection")
        )
        self._check_offered(definition, connection)
        self._check_return_url(return_url)
        auth = connection.auth
        scopes = tuple(auth.upgrade_scopes if upgrade and isinstance(auth, OAuth2) else getattr(auth, "scopes", ()))
        if product is not None or (isinstance(auth, OAuth2) and auth.products):
            scopes = self._product_scopes(integration, connection, scopes, product)
        session_id = secrets.token_urlsafe(32)
        request = FlowRequest(
            tenant_id=integration.tenant_id,
            owner_id=integration.owner_id,
            integration_id=integration.id,
            definition_id=definition.id,
            connection=connection.connection_id(),
            session_id=session_id,
            scopes=scopes,
            return_url=return_url,
        )
        flow = self.runtime.keymaker.start(
            request, lambda started: self._provider_url(definition, auth, started, scopes)
        )
        with self.runtime.db.session() as session:
            audit(
                session,
                integration,
                actor=_actor(principal),
                action="upgrade_started" if upgrade else "connect_started",
                detail={"connection": connection.connection_id(), "scopes": list(scopes)},
            )
        query = urlencode({"flow": flow.flow_id, "session": session_id})
        return f"{self.runtime.settings.public_url.rstrip('/')}{START_PATH}?{query}"

    def _product_scopes(
        self, integration: Integration, connection: type[ConnectionBase], scopes: tuple[str, ...], product: str | None
    ) -> tuple[str, ...]:
        """``scopes``, then what the stored grant of this connection holds, then ``product``'s scopes (no repeats)."""
        auth = connection.auth
        chosen = auth.product(product) if isinstance(auth, OAuth2) and product is not None else None
        if product is not None and chosen is None:
            raise UnknownProduct(f"{connection.connection_id()} has no product {product!r}")
        held: list[str] = []
        if (integration.provider_data or {}).get("connection") == connection.connection_id():
            with self.runtime.db.session() as session:  # the scopes are stored in clear: nothing is decrypted
                held = list(
                    session.exec(
                        select(Credential.scopes).where(
                            Credential.integration_id == integration.id,
                            Credential.slot == connection.credential.slot_id(),
                        )
                    ).first()
                    or []
                )
        return tuple(dict.fromkeys((*scopes, *held, *(chosen.scopes if chosen else ()))))

    def _flow_connection(self, definition: Definition, connection_id: str | None) -> type[ConnectionBase]:
        flows = [c for c in definition.connections if isinstance(c.auth, OAuth2 | AppInstall)]
        if connection_id:
            chosen = definition.connection(connection_id)
            if chosen is None or chosen not in flows:
                raise ConnectionRequired(f"{connection_id} is not a connection with a browser flow")
            return chosen
        if len(flows) != 1:
            raise ConnectionRequired(f"{definition.id} has {len(flows)} connections with a browser flow; name one")
        return flows[0]

    def _provider_url(self, definition: Definition, auth: Any, flow: StartedFlow, scopes: tuple[str, ...]) -> str:
        config = self.runtime.operator_config(definition.id)
        if isinstance(auth, OAuth2):
            auth = auth.at(self.runtime.settings.public_url)
            return authorization_url(
                auth,
                oauth_client(definition, auth, config),
                redirect_uri=self.callback_url,
                state=flow.state,
                code_verifier=flow.code_verifier if auth.pkce else None,
                nonce=flow.nonce,
                scopes=scopes,
            )
        fields = config.model_dump(mode="json") if config is not None else {}
        base = auth.install_url.format(**{k: v for k, v in fields.items() if isinstance(v, str)})
        return f"{base}{'&' if '?' in base else '?'}{urlencode({'state': flow.state})}"

    def _check_offered(self, definition: Definition, connection: type[ConnectionBase]) -> None:
        """A connection whose operator config is incomplete (an unset OAuth client secret) is not offered."""
        missing = self.runtime.unoffered.get(definition.id, {}).get(connection.connection_id())
        if missing:
            raise ProviderNotEnabled(
                f"{connection.connection_id()} is not enabled here: the operator must set {', '.join(missing)}"
            )

    @property
    def callback_url(self) -> str:
        return f"{self.runtime.settings.public_url.rstrip('/')}{CALLBACK_PATH}"

    def _check_return_url(self, url: str) -> None:
        """Only send browsers back to origins the operator allows (no open redirect)."""
        if not url:
            return
        allowed = {_origin(o) for o in self.runtime.settings.allowed_return_origins()}
        if _origin(url) not in allowed:
            raise ReturnUrlRefused("return_url is not on an allowed origin (TETHER_ALLOWED_RETURN_ORIGINS)")

    async def callback(
        self, *, state: str | None, session_id: str | None, params: dict[str, str]
    ) -> tuple[Integration, ConsumedFlow]:
        """Finish a flow from the provider's redirect: consume it, get the credential, run steps 5-10."""
        flow = self.runtime.keymaker.consume(state=state, session_id=session_id, error=params.get("error"))
        definition = self.runtime.definition(flow.definition_id)
        connection = definition.connection(flow.connection)
        if connection is None:
            raise ConnectionRequired(f"{flow.connection} is no longer a connection of {definition.id}")
        with self.runtime.db.session() as session:
            integration = session.get(Integration, flow.integration_id)
        if integration is None:
            raise NotFoundError("the integration of this flow no longer exists")
        actor = f"user:{flow.owner_id}"
        auth = connection.auth
        try:
            if isinstance(auth, OAuth2):
                auth = auth.at(self.runtime.settings.public_url)
                if not params.get("code"):
                    raise SetupFailed("the provider sent no authorization code", code="oauth_failed")
                tokens = await reaching(
                    "the token endpoint",
                    lambda: exchange_code(
                        auth,
                        oauth_client(definition, auth, self.runtime.operator_config(definition.id)),
                        code=params["code"],
                        redirect_uri=self.callback_url,
                        code_verifier=flow.code_verifier if auth.pkce else None,
                        scopes=flow.scopes,
                        loopback=self.runtime.settings.allow_loopback_providers,
                    ),
                )
                slot: CredentialSlot = token_slot(auth.slot, tokens)
            elif isinstance(auth, AppInstall):
                claimed = params.get(auth.callback_param, "")
                slot = auth.slot.model_validate({auth.callback_param: claimed})
            else:
                raise ConnectionRequired(f"{flow.connection} has no browser flow")
        except (TetherError, ValidationError) as exc:
            self._audit_failure(
                integration, None, getattr(exc, "code", "credential_invalid"), step=4, actor=actor, reason=_reason(exc)
            )
            failure = exc if isinstance(exc, TetherError) else SetupFailed("the callback carried no valid credential")
            failure.return_url = flow.return_url  # type: ignore[attr-defined]
            raise failure from None
        try:
            return await self._complete(integration, definition, connection, slot, actor=actor), flow
        except TetherError as exc:
            exc.return_url = flow.return_url  # type: ignore[attr-defined]  # lets the callback send the browser back
            raise

    # -- steps 5 to 10 -------------------------------------------------------------------------------------------

    async def _complete(
        self,
        integration: Integration,
        definition: Definition,
        connection: type[ConnectionBase],
        slot: CredentialSlot,
        *,
        actor: str,
    ) -> Integration:
        attributes = {
            "tether.integration.id": integration.id,
            "tether.definition": definition.id,
            "tether.connection": connection.__name__,
        }
        with tracing.span("tether.setup.complete", attributes):
            return await self._complete_steps(integration, definition, connection, slot, actor=actor)

    async def _complete_steps(
        self,
        integration: Integration,
        definition: Definition,
        connection: type[ConnectionBase],
        slot: CredentialSlot,
        *,
        actor: str,
    ) -> Integration:
        unsaved = StoredCredential(integration.id, slot, 0, None, ())
        client = self._client(integration, connection, slot)
        ctx = ConnectionContext(
            integration.id,
            slot,
            client,
            self.runtime.operator_config(definition.id),
            self.runtime.user_input(integration),
        )
        try:
            if isinstance(connection.auth, AppInstall):
                with tracing.span("tether.setup.verify_install", {"tether.setup.step": 6}):
                    await reaching("the provider", lambda: connection().verify_install(ctx))
            with tracing.span("tether.setup.health_check", {"tether.setup.step": 6}):
                await reaching("the provider", lambda: self._health_check(integration, connection, unsaved, client))
            with tracing.span("tether.setup.resolve", {"tether.setup.step": 9}):
                metadata = await reaching("the provider", lambda: connection().resolve(ctx)) or IntegrationMetadata()
        except TetherError as exc:
            self._audit_failure(integration, None, exc.code, step=6, actor=actor, reason=_reason(exc))
            if isinstance(exc, ProviderError) and exc.code in ("unauthorized", "provider_error"):
                raise CredentialRejected("the provider refused this credential") from None
            raise
        finally:
            await _close(client)
        try:
            with tracing.span("tether.setup.save", {"tether.setup.step": 7}):
                row, first = self._save(integration, connection, slot, metadata, actor=actor)
        except AccountMismatch as exc:
            await self._refuse_account(integration, definition, connection, slot, exc, actor=actor)
            raise
        self.runtime.custody.forget(row.id)
        self.runtime.clients.drop(row.id)
        if first:
            with tracing.span("tether.setup.first_connection", {"tether.setup.step": 10}):
                await self._first_connection(row, actor=actor)
        elif isinstance(connection.auth, OAuth2) and connection.auth.products:
            await self._products_added(row, actor=actor)
        return row

    async def _products_added(self, integration: Integration, *, actor: str) -> None:
        """After a reconnect or upgrade of a connection with products: reconcile what a newly granted product
        brings (reconcile skips what already ran, so only the new product's operations are dispatched)."""
        hooks = [hook for hook in first_connection_hooks(self.runtime) if hook[0] == "reconcile_dispatched"]
        await self._run_hooks(integration, hooks, actor=actor)

    def _save(
        self,
        integration: Integration,
        connection: type[ConnectionBase],
        slot: CredentialSlot,
        metadata: IntegrationMetadata,
        *,
        actor: str,
    ) -> tuple[Integration, bool]:
        """Steps 7-9 in one transaction, after checking (in it) that the account is the one already connected."""
        with self.runtime.db.session() as session:
            row = session.get(Integration, integration.id)
            if row is None:
                raise NotFoundError("the integration was deleted during setup")
            _check_same_account(row, metadata)
            # A disconnect retired the endpoints and the scheduler dropped the schedules: step 10 runs again.
            first = row.connected_at is None or row.status == IntegrationStatus.disconnected
            self.runtime.keystore.save(row.id, slot, session=session)
            routing = _routing(connection, slot)
            row.provider_data = {"connection": connection.connection_id(), **routing}
            row.account = metadata.model_dump(mode="json", exclude_none=True)
            row.health = Health.valid
            transition(
                session,
                row,
                IntegrationStatus.connected,
                actor=actor,
                action="connect",
                detail={"connection": connection.connection_id(), "first": first, **_products_detail(connection, slot)},
            )
        return row, first

    async def _refuse_account(
        self,
        integration: Integration,
        definition: Definition,
        connection: type[ConnectionBase],
        slot: CredentialSlot,
        refused: AccountMismatch,
        *,
        actor: str,
    ) -> None:
        """Undo what the refused flow created at the provider (its OAuth grant), and record the refusal."""
        revoked, revoke_code = False, ""
        try:
            revoked = await reaching(
                "the revocation endpoint",
                lambda: self.runtime.custody.discard_grant(
                    integration, definition, connection, slot, lambda: self._client(integration, connection, slot)
                ),
            )
        except TetherError as exc:
            revoke_code = exc.code
        with self.runtime.db.session() as session:
            audit(
                session,
                integration,
                actor=actor,
                action="connect",
                outcome="failed",
                detail={
                    "step": 9,
                    "code": refused.code,
                    "connected_account": refused.connected,
                    "offered_account": refused.offered,
                    "grant_revoked": revoked,
                    **({"revoke_code": revoke_code} if revoke_code else {}),
                },
            )

    async def _health_check(
        self, integration: Integration, connection: type[ConnectionBase], stored: StoredCredential, client: Any
    ) -> None:
        op = connection.validate
        if op is None:
            return
        ctx = OperationContext(
            integration_id=integration.id,
            tenant_id=integration.tenant_id,
            config=op.config(),
            client=client,
            operator_config=self.runtime.operator_config(integration.definition_id),
            user_input=self.runtime.user_input(integration),
        )
        await op().run(ctx)

    def _client(self, integration: Integration, connection: type[ConnectionBase], slot: CredentialSlot) -> Any:
        """A fresh client for a credential that is not saved yet (never cached)."""
        client_type = next((c for c in connection.clients if type(slot) in c.slots), None)
        if client_type is None:
            return None
        return client_type().build(self.runtime.client_context(integration, slot))

    async def _first_connection(self, integration: Integration, *, actor: str) -> None:
        """Step 10: webhook endpoints and reconcile-eligible operations, once per integration."""
        await self._run_hooks(integration, first_connection_hooks(self.runtime), actor=actor)

    async def _run_hooks(self, integration: Integration, hooks: list[tuple[str, Any]], *, actor: str) -> None:
        """Each hook in turn; a failing one is audited under its name and does not stop the others."""
        for name, hook in hooks:
            try:
                await hook(integration)
            except TetherError as exc:
                with self.runtime.db.session() as session:
                    audit(session, integration, actor=actor, action=name, outcome="failed", detail={"code": exc.code})

    # -- validation and reconnect --------------------------------------------------------------------------------

    async def validate(self, principal: Principal, integration_id: str) -> tuple[bool, Integration]:
        """Run the health check with the stored credential; health becomes valid, invalid or unknown."""
        integration = self.get(principal, integration_id)
        definition = self.runtime.definition(integration.definition_id)
        connection = definition.connection((integration.provider_data or {}).get("connection", ""))
        if connection is None:
            raise ConnectionRequired("this integration is not connected")
        health, code, reconnect, trouble = Health.valid, "", False, ""
        try:
            if isinstance(connection.auth, OAuth2):
                await reaching("the token endpoint", lambda: self.runtime.custody.get_access_token(integration.id))
            stored = self.runtime.keystore.require(integration.id, connection.credential)
            client = self.runtime.build_client(integration, connection, stored)
            await reaching("the provider", lambda: self._health_check(integration, connection, stored, client))
        except ProviderUnavailable as exc:
            health, code, trouble = Health.unknown, exc.code, _reason(exc)
        except ReconnectRequired as exc:
            health, code, reconnect = Health.invalid, exc.code, True
        except ProviderError as exc:
            health, code = (Health.invalid, exc.code) if exc.code == "unauthorized" else (Health.unknown, exc.code)
            reconnect = exc.code == "unauthorized"
        except TetherError as exc:
            health, code = Health.unknown, exc.code
        with self.runtime.db.session() as session:
            row = session.get(Integration, integration.id)
            assert row is not None
            row.health = health
            if reconnect:
                transition(
                    session,
                    row,
                    IntegrationStatus.reconnect_required,
                    actor=_actor(principal),
                    action="validate",
                    reason="the provider refused the credential",
                    detail={"code": code},
                )
            else:
                if trouble or (health == Health.valid and row.status == IntegrationStatus.connected):
                    row.status_reason = trouble  # a reason this check gave, or cleared by a passing check
                session.add(row)
                audit(
                    session,
                    row,
                    actor=_actor(principal),
                    action="validate",
                    outcome="ok" if health == Health.valid else "failed",
                    detail={"health": health, "code": code},
                )
        return health == Health.valid, row

    def _audit_failure(
        self,
        integration: Integration,
        principal: Principal | None,
        code: str,
        *,
        step: int,
        actor: str = "",
        reason: str = "",
    ) -> None:
        """Record a failed step; a provider that could not be reached also leaves its reason on the integration."""
        with self.runtime.db.session() as session:
            if reason:
                row = session.get(Integration, integration.id)
                if row is not None:
                    row.status_reason = reason[:500]
                    session.add(row)
            audit(
                session,
                integration,
                actor=actor or (_actor(principal) if principal else "tether"),
                action="connect",
                outcome="failed",
                detail={"step": step, "code": code},
            )


def first_connection_hooks(runtime: Services) -> list[tuple[str, Any]]:
    """What step 10 runs: webhook endpoint reconciliation, then reconcile-eligible operations."""
    from engine.runs.scheduler import reconcile
    from engine.webhooks.endpoints import ensure_endpoints

    return [
        ("webhooks_reconciled", lambda integration: ensure_endpoints(runtime, integration)),
        ("reconcile_dispatched", lambda integration: reconcile(runtime, integration.id)),
    ]


def _products_detail(connection: type[ConnectionBase], slot: CredentialSlot) -> dict[str, list[str]]:
    """``{"products": [...]}``: the products the new grant covers, for a connection that declares products."""
    auth = connection.auth
    if not isinstance(auth, OAuth2) or not auth.products:
        return {}
    return {"products": granted_products(auth, tuple(getattr(slot, "scopes", ()) or ()))}


def _reason(exc: BaseException) -> str:
    """The ``status_reason`` a failed step leaves: only for provider trouble (the other failures are the user's)."""
    if isinstance(exc, ProviderUnavailable) or getattr(exc, "code", "") == "provider_unavailable":
        return f"provider unavailable: {exc}"
    return ""


def _check_same_account(row: Integration, metadata: IntegrationMetadata) -> None:
    """Refuse a credential of another account while the integration holds (or held until a reconnect) one.

    Pending and disconnected integrations may connect any account; so may a credential whose account the
    definition does not resolve (there is nothing to compare).
    """
    if row.status in (IntegrationStatus.pending, IntegrationStatus.disconnected):
        return
    connected = (row.account or {}).get("account_id")
    offered = metadata.account_id
    if connected and offered and str(connected) != str(offered):
        raise AccountMismatch(str(connected), str(offered))


def _routing(connection: type[ConnectionBase], slot: CredentialSlot) -> dict[str, str]:
    """Provider-side identifiers a static webhook routes by (a GitHub App's installation ID)."""
    if isinstance(connection.auth, AppInstall):
        return {connection.auth.callback_param: str(getattr(slot, connection.auth.callback_param))}
    return {}


class CredentialInvalid(ValidationFailed):
    """A typed-in credential does not match its slot; ``fields`` says which field is wrong and how (never a value)."""

    code = "credential_invalid"

    def __init__(self, message: str, *, fields: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.fields = fields

    def details(self) -> dict[str, object]:
        return {"fields": self.fields}


#: Error types whose message is the definition author's own text (a validator's ``ValueError``), which may quote
#: the value: those get a fixed sentence instead. Pydantic's built-in messages name constraints, never the input.
_AUTHORED_ERRORS = {"value_error", "assertion_error"}


def field_errors(error: ValidationError) -> list[dict[str, str]]:
    """One entry per invalid field: its name and what is wrong, for a form to show next to the field."""
    found: dict[str, str] = {}
    for e in error.errors(include_input=False, include_url=False):
        field = ".".join(str(p) for p in e["loc"])
        if field and field not in found:
            found[field] = "This value is not valid." if e["type"] in _AUTHORED_ERRORS else str(e["msg"]) + "."
    return [{"field": name, "message": message} for name, message in found.items()]


def _fields_message(what: str, error: ValidationError) -> str:
    """Which fields are wrong, never their values (a credential's value is a secret)."""
    fields = sorted({".".join(str(p) for p in e["loc"]) or what for e in error.errors()})
    return f"invalid {what}: check {', '.join(fields)}"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _actor(principal: Principal) -> str:
    return f"server:{principal.tenant_id}" if principal.is_server else f"user:{principal.owner_id}"


async def _close(client: Any) -> None:
    aclose = getattr(client, "aclose", None)
    if aclose is not None:
        await aclose()
