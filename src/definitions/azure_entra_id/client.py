"""The Graph client: one ``httpx.AsyncClient`` per consenting tenant, acting app-only (no signed-in user).

App-only access is the OAuth 2.0 client-credentials grant against the *tenant's* token endpoint
(``https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token``, scope ``https://graph.microsoft.com/.default``
= every application permission the admin consented to). ``AppOnlyAuth`` mints the token inside httpx's auth flow,
reuses it, and mints again shortly before it expires. The tenant comes from the stored slot, the client ID and
secret from the operator config.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, cast

import anyio
import httpx

from definitions.azure_entra_id.config import EntraConfig
from definitions.azure_entra_id.graph import GRAPH_URL, raise_for_status
from definitions.azure_entra_id.slots import EntraTenant
from engine import Client, ClientContext, ProviderError
from engine.egress import egress_client, read_json
from engine.errors import ConfigurationError

TOKEN_URL = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"
SCOPE = "https://graph.microsoft.com/.default"
HEADERS = {"Accept": "application/json", "User-Agent": "Tether (azure_entra_id)"}
#: Mint a new token this long before the current one expires, so no request carries a stale one.
REMINT_MARGIN = 5 * 60


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


class AppOnlyAuth(httpx.Auth):
    """Client-credentials tokens for one tenant; a lock makes concurrent requests share one mint."""

    def __init__(self, *, tenant_id: str, client_id: str, client_secret: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.tenant_id = tenant_id
        self.client_id = client_id
        self._secret = client_secret
        #: Seconds since the epoch; replaceable so tests can move time forward.
        self.clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = anyio.Lock()

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        async with self._lock:
            if self._token is None or self.clock() >= self._expires_at - REMINT_MARGIN:
                minted = yield httpx.Request("POST", TOKEN_URL.format(tenant=self.tenant_id), data={
                    "client_id": self.client_id,
                    "client_secret": self._secret,
                    "scope": SCOPE,
                    "grant_type": "client_credentials",
                })
                await minted.aread()
                await self._store(minted)
            token = self._token
        request.headers["Authorization"] = f"Bearer {token}"
        yield request

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise TypeError("AppOnlyAuth mints tokens asynchronously; use it with httpx.AsyncClient")

    async def _store(self, response: httpx.Response) -> None:
        if response.status_code in (400, 401):
            # invalid_client / unauthorized_client: a wrong secret, or no admin consent in this tenant (any more).
            raise ProviderError("Microsoft refused the app's token request for this tenant",
                                provider_status=response.status_code, code="unauthorized")
        raise_for_status(response)
        body: Any = await read_json(response)
        try:
            self._token = str(body["access_token"])
            self._expires_at = self.clock() + float(body["expires_in"])
        except (TypeError, KeyError, ValueError):
            raise ProviderError("Microsoft answered an unexpected token shape") from None
