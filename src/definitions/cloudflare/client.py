"""The Cloudflare API client: one ``httpx.AsyncClient`` per token, through the egress guard.

Operations also need the account the token was saved with (zones are listed per account), so the client is an
``CloudflareApi`` pairing the HTTP client with that account ID.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from definitions.cloudflare.slots import CloudflareApiToken
from engine import Client, ClientContext
from engine.kit.egress import egress_client
from engine.kit.providerkit import BearerAuth

API_URL = "https://api.cloudflare.com/client/v4"
HEADERS = {"Accept": "application/json", "User-Agent": "Tether (cloudflare)"}


@dataclass
class CloudflareApi:
    """The HTTP client (``/client/v4`` base) and the account it acts on."""

    http: httpx.AsyncClient
    account_id: str

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> CloudflareApi:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


class CloudflareClient(Client):
    """REST and GraphQL client for ``api.cloudflare.com``, authenticated with the API token."""

    slots = (CloudflareApiToken,)

    def build(self, ctx: ClientContext) -> CloudflareApi:
        credential = ctx.credential
        if not isinstance(credential, CloudflareApiToken):
            raise TypeError(f"CloudflareClient cannot be built from {type(credential).__name__}")
        auth = BearerAuth(credential.api_token.get_secret_value())
        return CloudflareApi(egress_client(base_url=API_URL, headers=HEADERS, auth=auth), credential.account_id)
