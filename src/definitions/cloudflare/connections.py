"""The one connection: a person pastes an account-scoped API token and the account ID."""

from __future__ import annotations

from typing import cast

from definitions.cloudflare.api import get
from definitions.cloudflare.client import CloudflareApi, CloudflareClient
from definitions.cloudflare.operations import HealthCheck
from definitions.cloudflare.slots import CloudflareApiToken
from engine import Connection, ConnectionContext, IntegrationMetadata, NoRevocation


class CloudflareTokenConnection(Connection):
    """An API token with read permissions on the account's zones, DNS and analytics."""

    title = "Use an API token"
    credential = CloudflareApiToken
    clients = (CloudflareClient,)
    validate = HealthCheck
    # Deleting a token needs "API Tokens Write", which a read-only token should never have.
    disconnect = NoRevocation(
        reason="Tether forgets the token but cannot delete it. Delete it under My Profile → API Tokens "
        "(https://dash.cloudflare.com/profile/api-tokens).",
    )

    async def resolve(self, ctx: ConnectionContext) -> IntegrationMetadata:
        """The account the token reads (``GET /accounts/{id}`` also proves the token can see it)."""
        api = cast(CloudflareApi, ctx.client)
        account = await get(api.http, f"/accounts/{api.account_id}")
        return IntegrationMetadata(account_id=str(account.get("id")), account_name=account.get("name"),
                                   url=f"https://dash.cloudflare.com/{api.account_id}",
                                   attributes={"type": account.get("type")})
