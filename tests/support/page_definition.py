"""Definitions for the page's browser test, each a shape of card the page must render from the catalog alone.

- ``crm``: an OAuth connection the operator config cannot serve (its client is unset, so no "Connect" button) and
  a typed-in API key whose form comes from the slot's JSON Schema; an operation that ingests three assets and one
  that fails with a stable code (``pagination_loop``). No network: the key is checked by its own shape.
- ``ledger``: disabled, its operator config lacks a required variable (the card names it).
- ``relay``: enabled, with no connection a person can make (the card says why).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pydantic import Field, SecretStr

from engine import (
    Client,
    ClientContext,
    Connection,
    CredentialSlot,
    Definition,
    Emits,
    IntegrationMetadata,
    Mapping,
    NoRevocation,
    OAuth2,
    OAuth2Token,
    Operation,
    OperationContext,
    OperatorConfig,
    Payload,
    Policy,
    Revoke,
)
from engine.errors import ProviderError
from engine.kit.providerkit import PaginationLoop


class CrmConfig(OperatorConfig):
    #: Optional so the typed-in key works without an OAuth client; the OAuth connection is then not offered.
    client_id: str = ""
    client_secret: SecretStr | None = None


class CrmGrant(OAuth2Token):
    """The OAuth token set (not offered in the test: no client configured)."""


class CrmKey(CredentialSlot):
    """An API key from the CRM's settings page, and the workspace it belongs to."""

    api_key: SecretStr = Field(title="API key", description="Settings → API → Create key (starts with crm_).")
    workspace: str = Field(title="Workspace", pattern=r"^[a-z0-9-]{2,40}$", description="Lower-case, as in the URL.")


class CrmClient(Client):
    slots = (CrmGrant, CrmKey)

    def build(self, ctx: ClientContext) -> Any:
        key = ctx.credential.api_key.get_secret_value() if isinstance(ctx.credential, CrmKey) else ""
        return {"workspace": getattr(ctx.credential, "workspace", "oauth"), "key": key}


class Ping(Operation):
    """The health check: a key that does not start with ``crm_`` is refused as the provider would."""

    client = CrmClient
    policy = Policy.inline()

    async def run(self, ctx: OperationContext) -> dict[str, bool]:
        if not ctx.client["key"].startswith("crm_"):
            raise ProviderError("the provider refused the key", provider_status=401, code="unauthorized")
        return {"ok": True}


class Sync(Operation):
    """Ingest the workspace's three devices."""

    client = CrmClient
    policy = Policy.inline()
    emits = (Emits("asset", "device"),)

    async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        for i in range(3):
            yield Payload("asset", {"id": f"dev-{i}", "name": f"{ctx.client['workspace']} device {i}"}, "device")


class Backfill(Operation):
    """Fails as a provider whose paging loops would: a stable code the page words for a person."""

    client = CrmClient
    policy = Policy.inline()
    emits = (Emits("asset", "device"),)

    async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        raise PaginationLoop("the provider handed out the same cursor twice")
        yield  # pragma: no cover - makes this an async generator


class CrmOAuth(Connection):
    title = "Sign in with Demo CRM"
    credential = CrmGrant
    clients = (CrmClient,)
    auth = OAuth2(
        slot=CrmGrant,
        authorize_url="https://crm.example/oauth/authorize",
        token_url="https://crm.example/oauth/token",
        revoke_url="https://crm.example/oauth/revoke",
        scopes=("read",),
    )
    disconnect = Revoke(CrmGrant)


class CrmKeyConnection(Connection):
    title = "API key"
    credential = CrmKey
    clients = (CrmClient,)
    validate = Ping
    disconnect = NoRevocation("delete the key in the CRM's settings")

    async def resolve(self, ctx: Any) -> IntegrationMetadata | None:
        return IntegrationMetadata(account_id=ctx.credential.workspace, account_name=ctx.credential.workspace)


crm = Definition(
    id="crm",
    name="Demo CRM",
    description="A CRM whose devices land as assets.",
    operator_config=CrmConfig,
    slots=(CrmGrant, CrmKey),
    clients=(CrmClient,),
    connections=(CrmOAuth, CrmKeyConnection),
    operations=(Ping, Sync, Backfill),
    mappings=(
        Mapping(
            schema="asset",
            variant="device",
            map='{"source_identifier": payload.id, "name": payload.name, "asset_type": "device"}',
        ),
    ),
)


class LedgerConfig(OperatorConfig):
    api_base: str
    signing_secret: SecretStr


ledger = Definition(
    id="ledger",
    name="Ledger",
    description="Accounting entries (needs operator settings).",
    operator_config=LedgerConfig,
)

relay = Definition(id="relay", name="Relay", description="Set up by the host app's server, not by a person.")
