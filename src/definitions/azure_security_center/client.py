"""The ARM client: one ``httpx.AsyncClient`` per service principal, with client-credentials tokens.

The token comes from the customer's tenant (``https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token``,
scope ``https://management.azure.com/.default``). ``ServicePrincipalAuth`` mints it inside httpx's auth flow,
reuses it and mints again shortly before it expires, because the engine's client-credentials custody cannot yet
fill the tenant into the token URL.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from definitions.azure_security_center.arm import check
from definitions.azure_security_center.slots import AzureServicePrincipal
from engine import Client, ClientContext, ProviderError
from engine.egress import egress_client
from engine.providerkit import MintedTokenAuth, token_answer

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
        auth = ServicePrincipalAuth(tenant_id=credential.tenant_id, client_id=credential.client_id,
                                    client_secret=credential.client_secret.get_secret_value())
        return ArmApi(egress_client(base_url=ARM_URL, headers=HEADERS, auth=auth), credential.subscription_id)


class ServicePrincipalAuth(MintedTokenAuth):
    """Client-credentials tokens for one tenant."""

    def __init__(self, *, tenant_id: str, client_id: str, client_secret: str,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock=clock)
        self.tenant_id = tenant_id
        self.client_id = client_id
        self._secret = client_secret

    def mint_request(self) -> httpx.Request:
        return httpx.Request("POST", TOKEN_URL.format(tenant_id=self.tenant_id), data={
            "client_id": self.client_id, "client_secret": self._secret, "scope": SCOPE,
            "grant_type": "client_credentials"})

    async def read_token(self, response: httpx.Response) -> tuple[str, float]:
        if response.status_code in (400, 401):
            # invalid_client (a wrong or expired secret), unauthorized_client, or an unknown tenant.
            raise ProviderError("Microsoft refused the service principal's token request",
                                provider_status=response.status_code, code="unauthorized")
        await check(response)
        return await token_answer(response, provider="Microsoft")


