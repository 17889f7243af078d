"""The one connection: a service principal entered by a person, tokens minted with client credentials."""

from __future__ import annotations

from typing import cast

from definitions.azure_security_center.arm import check
from definitions.azure_security_center.client import SCOPE, TOKEN_URL, ArmApi, ArmClient
from definitions.azure_security_center.operations import SUBSCRIPTION_API, HealthCheck
from definitions.azure_security_center.slots import AzureServicePrincipal
from engine import ClientCredentials, Connection, ConnectionContext, IntegrationMetadata, NoRevocation


class ServicePrincipalConnection(Connection):
    """An app registration in the customer's tenant with the Security Reader role on one subscription."""

    title = "Use a service principal"
    credential = AzureServicePrincipal
    clients = (ArmClient,)
    auth = ClientCredentials(slot=AzureServicePrincipal, token_url=TOKEN_URL, scopes=(SCOPE,))
    validate = HealthCheck
    disconnect = NoRevocation(
        reason="Tether forgets the client secret but cannot delete it. Delete the secret (or the app "
        "registration) under Microsoft Entra ID → App registrations, and remove its Security Reader role.",
    )

    async def resolve(self, ctx: ConnectionContext) -> IntegrationMetadata:
        api = cast(ArmApi, ctx.client)
        credential = cast(AzureServicePrincipal, ctx.credential)
        response = await api.http.get(f"/subscriptions/{api.subscription_id}",
                                      params={"api-version": SUBSCRIPTION_API})
        subscription = await check(response)
        return IntegrationMetadata(
            account_id=api.subscription_id, account_name=subscription.get("displayName"),
            workspace=credential.tenant_id,
            url=f"https://portal.azure.com/#@{credential.tenant_id}/resource/subscriptions/{api.subscription_id}",
            attributes={"state": subscription.get("state")},
        )
