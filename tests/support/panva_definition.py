"""A definition whose OAuth2 connection points at the panva test server named by environment variables.

Built at import time from ``TETHER_TEST_OAUTH_AUTHORIZE_URL`` / ``_TOKEN_URL`` / ``_REVOKE_URL`` so that a
subprocess (the multi-process single-flight test) can load exactly the same definition through
``TETHER_DEFINITION_MODULES=support.panva_definition``.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import SecretStr

from engine import (
    Client,
    ClientContext,
    ClientCredentials,
    Connection,
    CredentialSlot,
    Definition,
    NoRevocation,
    OAuth2,
    OAuth2Token,
    OperatorConfig,
    Revoke,
)


class PanvaConfig(OperatorConfig):
    client_id: str
    client_secret: SecretStr


class PanvaGrant(OAuth2Token):
    """The token set of the authorization-code connection."""


class PanvaAppCredentials(CredentialSlot):
    """Client ID and secret a person enters for app-only access."""

    client_id: str
    client_secret: SecretStr


class PanvaClient(Client):
    slots = (PanvaGrant, PanvaAppCredentials)

    def build(self, ctx: ClientContext) -> Any:
        return {"built_for": ctx.integration_id}


def _url(name: str) -> str:
    return os.environ.get(f"TETHER_TEST_OAUTH_{name}_URL", f"http://127.0.0.1:9/{name.lower()}")


class PanvaOAuth(Connection):
    credential = PanvaGrant
    clients = (PanvaClient,)
    auth = OAuth2(
        slot=PanvaGrant,
        authorize_url=_url("AUTHORIZE"),
        token_url=_url("TOKEN"),
        revoke_url=_url("REVOKE"),
        scopes=("openid", "offline_access", "api:read"),
        upgrade_scopes=("openid", "offline_access", "api:read", "api:write"),
        extra_authorize_params=(("prompt", "consent"),),
    )
    disconnect = Revoke(PanvaGrant)


class PanvaAppOnly(Connection):
    credential = PanvaAppCredentials
    clients = (PanvaClient,)
    auth = ClientCredentials(slot=PanvaAppCredentials, token_url=_url("TOKEN"), scopes=("api:read",))
    disconnect = NoRevocation("delete the client in the provider's console")


definition = Definition(
    id="panva",
    name="Panva test server",
    description="A real OAuth 2.0 server for tests.",
    operator_config=PanvaConfig,
    slots=(PanvaGrant, PanvaAppCredentials),
    clients=(PanvaClient,),
    connections=(PanvaOAuth, PanvaAppOnly),
)
