"""The Graph client: one ``httpx.AsyncClient`` per consenting tenant, acting app-only (no signed-in user).

App-only access is the OAuth 2.0 client-credentials grant against the *tenant's* token endpoint
(``https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token``, scope ``https://graph.microsoft.com/.default`` =
every application permission the admin consented to). ``ClientSecretAuth`` (the provider kit) mints the token inside
httpx's auth flow, reuses it, and mints again shortly before it expires. The tenant comes from the stored slot, the
client ID and secret from the operator config.
"""

from __future__ import annotations

from typing import cast

import httpx

from definitions.azure_entra_id.config import EntraConfig
from definitions.azure_entra_id.slots import EntraTenant
from definitions.microsoft_graph import GRAPH_URL, raise_for_status
from engine import Client, ClientContext, ConfigurationError
from engine.kit.egress import egress_client
from engine.kit.providerkit import ClientSecretAuth

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
        # invalid_client / unauthorized_client: a wrong secret, or no admin consent in this tenant (any more).
        auth = ClientSecretAuth(token_url=TOKEN_URL.format(tenant=credential.tenant_id), client_id=config.client_id,
                                client_secret=config.client_secret.get_secret_value(), scope=SCOPE,
                                provider="Microsoft", check=raise_for_status,
                                refused="Microsoft refused the app's token request for this tenant")
        return egress_client(base_url=GRAPH_URL, headers=HEADERS, auth=auth)

