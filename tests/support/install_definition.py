"""A definition connected by installing an app (GitHub App style), whose callback claim is verified.

``verify_install`` accepts only installation 4242, the way a real definition asks the provider (with its app
credentials) whether the claimed installation belongs to it. ``ItemSync`` is reconcile-eligible, so the first
successful connection dispatches it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from engine import (
    AppInstall,
    Client,
    ClientContext,
    Connection,
    ConnectionContext,
    CredentialSlot,
    Definition,
    Emits,
    IntegrationMetadata,
    Mapping,
    NoRevocation,
    Operation,
    OperationContext,
    OperatorConfig,
    Payload,
    Policy,
    ProviderError,
)

GENUINE_INSTALLATION = 4242


class InstallConfig(OperatorConfig):
    app_slug: str = "tether-test"


class Installation(CredentialSlot):
    installation_id: int


class InstallClient(Client):
    slots = (Installation,)

    def build(self, ctx: ClientContext) -> Any:
        return {"installation": ctx.credential}


class ItemSync(Operation):
    """Sync items (reconciled after the first connection)."""

    client = InstallClient
    policy = Policy.queued(reconcile=True)
    emits = (Emits("asset", "item"),)

    async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        yield Payload("asset", {"id": "1", "name": "one"}, variant="item")


class AppConnection(Connection):
    credential = Installation
    clients = (InstallClient,)
    auth = AppInstall(slot=Installation, install_url="https://install.example/apps/{app_slug}/installations/new")
    disconnect = NoRevocation("uninstall the app from the account's settings")

    async def verify_install(self, ctx: ConnectionContext) -> None:
        if getattr(ctx.credential, "installation_id", None) != GENUINE_INSTALLATION:
            raise ProviderError("the installation does not belong to this app", code="unauthorized")

    async def resolve(self, ctx: ConnectionContext) -> IntegrationMetadata:
        return IntegrationMetadata(account_id="org-1", account_name="acme-org")


definition = Definition(
    id="install_sample",
    name="Install sample",
    description="An app-install definition for tests.",
    operator_config=InstallConfig,
    slots=(Installation,),
    clients=(InstallClient,),
    connections=(AppConnection,),
    operations=(ItemSync,),
    mappings=(
        Mapping("asset", "item", map='{"source_identifier": payload.id, "name": payload.name, "asset_type": "item"}'),
    ),
)
