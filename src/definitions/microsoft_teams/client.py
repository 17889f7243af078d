"""The Graph client: sends the access token of the credential it is built with.

The Keystore refreshes the delegated token before a client is built (a new credential version builds a new
client), so the client never sees the refresh token.
"""

from __future__ import annotations

import httpx

from definitions.microsoft_graph import GRAPH_URL
from definitions.microsoft_teams.slots import TeamsOAuthToken
from engine import Client, ClientContext
from engine.kit.egress import egress_client
from engine.kit.providerkit import BearerAuth

HEADERS = {"Accept": "application/json", "User-Agent": "Tether (microsoft_teams)"}


class TeamsClient(Client):
    """REST client for ``graph.microsoft.com`` acting as the signed-in user."""

    slots = (TeamsOAuthToken,)

    def build(self, ctx: ClientContext) -> httpx.AsyncClient:
        credential = ctx.credential
        if not isinstance(credential, TeamsOAuthToken):
            raise TypeError(f"TeamsClient cannot be built from {type(credential).__name__}")
        return egress_client(base_url=GRAPH_URL, headers=HEADERS,
                             auth=BearerAuth(credential.access_token.get_secret_value()))
