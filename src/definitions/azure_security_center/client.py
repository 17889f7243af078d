"""The ARM client: one ``httpx.AsyncClient`` per service principal, with client-credentials tokens.

The token comes from the customer's tenant (``https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token``, scope
``https://management.azure.com/.default``). ``ClientSecretAuth`` (the provider kit) mints it inside httpx's auth flow,
reuses it and mints again shortly before it expires, because the engine's client-credentials custody cannot yet fill the
tenant into the token URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from definitions.azure_security_center.arm import raise_for_status
from definitions.azure_security_center.slots import AzureServicePrincipal
from engine import Client, ClientContext
from engine.kit.egress import egress_client
from engine.kit.providerkit import ClientSecretAuth

ARM_URL = "https://management.azure.com"
TOKEN_URL = "https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token"
SCOPE = "https://management.azure.com/.default"
HEADERS = {"Accept": "application/json", "User-Agent": "Tether (azure_security_center)"}


@dataclass
class ArmApi:
    """The HTTP client and the subscription it reads."""

    http: httpx.AsyncClient
    subscription_id: str

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> ArmApi:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


class ArmClient(Client):
    """REST client for ``management.azure.com`` acting as the service principal."""

    slots = (AzureServicePrincipal,)

    def build(self, ctx: ClientContext) -> ArmApi:
        credential = ctx.credential
        if not isinstance(credential, AzureServicePrincipal):
            raise TypeError(f"ArmClient cannot be built from {type(credential).__name__}")
        # invalid_client (a wrong or expired secret), unauthorized_client, or an unknown tenant.
        auth = ClientSecretAuth(token_url=TOKEN_URL.format(tenant_id=credential.tenant_id),
                                client_id=credential.client_id,
                                client_secret=credential.client_secret.get_secret_value(), scope=SCOPE,
                                provider="Microsoft", check=raise_for_status,
                                refused="Microsoft refused the service principal's token request")
        return ArmApi(egress_client(base_url=ARM_URL, headers=HEADERS, auth=auth), credential.subscription_id)

