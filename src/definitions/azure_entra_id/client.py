"""The Graph client: one ``httpx.AsyncClient`` per consenting tenant, acting app-only (no signed-in user).

App-only access is the OAuth 2.0 client-credentials grant against the *tenant's* token endpoint
(``https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token``, scope ``https://graph.microsoft.com/.default``
= every application permission the admin consented to). ``AppOnlyAuth`` mints the token inside httpx's auth flow,
reuses it, and mints again shortly before it expires. The tenant comes from the stored slot, the client ID and
secret from the operator config.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import cast

import httpx

from definitions.azure_entra_id.config import EntraConfig
from definitions.azure_entra_id.slots import EntraTenant
from definitions.microsoft_graph import GRAPH_URL, raise_for_status
from engine import Client, ClientContext, ProviderError
from engine.egress import egress_client
from engine.errors import ConfigurationError
from engine.providerkit import MintedTokenAuth, token_answer

TOKEN_URL = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"
SCOPE = "https://graph.microsoft.com/.default"
HEADERS = {"Accept": "application/json", "User-Agent": "Tether (azure_entra_id)"}


class EntraClient(Client):
    """REST client for ``graph.microsoft.com`` acting as the app inside one tenant."""

    slots = (EntraTenant,)

    def build(self, ctx: ClientContext) -> httpx.AsyncClient:
        credential = ctx.credential
        if not isinstance(credential, EntraTenant):
            raise TypeError(f"EntraClient cannot be built from {type(credential).__name__}")
        if ctx.operator_config is None:
            raise ConfigurationError("azure_entra_id: the app's operator config is not set")
        config = cast(EntraConfig, ctx.operator_config)
        auth = AppOnlyAuth(tenant_id=credential.tenant_id, client_id=config.client_id,
                           client_secret=config.client_secret.get_secret_value())
        return egress_client(base_url=GRAPH_URL, headers=HEADERS, auth=auth)


class AppOnlyAuth(MintedTokenAuth):
    """Client-credentials tokens for one tenant."""

    def __init__(self, *, tenant_id: str, client_id: str, client_secret: str,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock=clock)
        self.tenant_id = tenant_id
        self.client_id = client_id
        self._secret = client_secret

    def mint_request(self) -> httpx.Request:
        return httpx.Request("POST", TOKEN_URL.format(tenant=self.tenant_id), data={
            "client_id": self.client_id,
            "client_secret": self._secret,
            "scope": SCOPE,
            "grant_type": "client_credentials",
        })

    async def read_token(self, response: httpx.Response) -> tuple[str, float]:
        if response.status_code in (400, 401):
            # invalid_client / unauthorized_client: a wrong secret, or no admin consent in this tenant (any more).
            raise ProviderError("Microsoft refused the app's token request for this tenant",
                                provider_status=response.status_code, code="unauthorized")
        raise_for_status(response)
        return await token_answer(response, provider="Microsoft")


