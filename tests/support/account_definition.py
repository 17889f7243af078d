"""A definition whose connections resolve *which account* a credential belongs to, over real HTTP.

``AccountOAuth`` is an authorization-code connection (point it at panva, or at a server that misbehaves); its
``resolve`` asks the userinfo endpoint who the token belongs to (panva answers the ``sub`` of whoever logged in).
``AccountKey`` is a typed-in API key; its health check, ``resolve`` and ``revoke`` call a small API server
(``/ping``, ``/me``, ``POST /revoke-key``: a provider-specific revocation, not RFC 7009). Every URL comes from
environment variables read at import time (reload the module after setting them):

* ``TETHER_TEST_ACCOUNTS_{AUTHORIZE,TOKEN,REVOKE,USERINFO}_URL`` for the OAuth connection,
* ``TETHER_TEST_ACCOUNTS_API_URL`` for the API key's server.

Clients time out after ``TETHER_TEST_ACCOUNTS_TIMEOUT`` seconds (default 5), so a provider that never answers
fails a test quickly.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
from pydantic import SecretStr

from engine import (
    Client,
    ClientContext,
    Connection,
    ConnectionContext,
    CredentialSlot,
    Definition,
    IntegrationMetadata,
    NoRevocation,
    OAuth2,
    OAuth2Token,
    Operation,
    OperationContext,
    OperatorConfig,
    Policy,
    ProviderError,
    Revoke,
)
from engine.kit.egress import egress_client


class AccountsConfig(OperatorConfig):
    client_id: str
    client_secret: SecretStr


class AccountGrant(OAuth2Token):
    """The token set of the authorization-code connection."""


class AccountKey(CredentialSlot):
    """An API key a person types in."""

    token: SecretStr


def _url(name: str) -> str:
    return os.environ.get(f"TETHER_TEST_ACCOUNTS_{name}_URL", f"http://127.0.0.1:9/{name.lower()}")


TIMEOUT = float(os.environ.get("TETHER_TEST_ACCOUNTS_TIMEOUT", "5"))


class AccountsClient(Client):
    slots = (AccountGrant, AccountKey)

    def build(self, ctx: ClientContext) -> httpx.AsyncClient:
        credential = ctx.credential
        token = credential.access_token if isinstance(credential, AccountGrant) else credential.token  # type: ignore[attr-defined]
        return egress_client(
            headers={"Authorization": f"Bearer {token.get_secret_value()}"}, timeout=TIMEOUT, allow_loopback=True
        )


async def _who(client: httpx.AsyncClient, url: str) -> IntegrationMetadata:
    response = await client.get(url)
    if response.status_code != 200:
        raise ProviderError(f"{url.rsplit('/', 1)[-1]} answered HTTP {response.status_code}", code="unauthorized")
    body: dict[str, Any] = response.json()
    return IntegrationMetadata(account_id=str(body["sub"]), account_name=str(body["sub"]))


class Ping(Operation):
    """Call the API once (the API key's health check)."""

    client = AccountsClient
    policy = Policy.inline()

    async def run(self, ctx: OperationContext) -> dict[str, bool]:
        response = await ctx.client.get(f"{_url('API')}/ping")
        if response.status_code != 200:
            raise ProviderError(f"ping answered HTTP {response.status_code}", code="unauthorized")
        return {"ok": True}


class AccountOAuth(Connection):
    credential = AccountGrant
    clients = (AccountsClient,)
    auth = OAuth2(
        slot=AccountGrant,
        authorize_url=_url("AUTHORIZE"),
        token_url=_url("TOKEN"),
        revoke_url=_url("REVOKE"),
        scopes=("openid", "offline_access", "api:read"),
        extra_authorize_params=(("prompt", "consent"),),
    )
    disconnect = Revoke(AccountGrant)

    async def resolve(self, ctx: ConnectionContext) -> IntegrationMetadata:
        return await _who(ctx.client, _url("USERINFO"))


class AccountApiKey(Connection):
    credential = AccountKey
    clients = (AccountsClient,)
    validate = Ping
    disconnect = Revoke(AccountKey)

    async def resolve(self, ctx: ConnectionContext) -> IntegrationMetadata:
        return await _who(ctx.client, f"{_url('API')}/me")

    async def revoke(self, ctx: ConnectionContext) -> None:
        # Raw httpx: a transport error here is the definition's to leave unhandled, and the engine's to type.
        response = await ctx.client.post(f"{_url('API')}/revoke-key")
        if response.status_code != 200:
            raise ProviderError(f"revoke-key answered HTTP {response.status_code}")


definition = Definition(
    id="accounts",
    name="Accounts test provider",
    description="Resolves the account of each credential, for the account-switch and provider-trouble tests.",
    operator_config=AccountsConfig,
    slots=(AccountGrant, AccountKey),
    clients=(AccountsClient,),
    connections=(AccountOAuth, AccountApiKey),
    operations=(Ping,),
)


class OptionalClientConfig(OperatorConfig):
    """An OAuth client kept optional in the config, as a definition with other connections might declare it."""

    client_id: str | None = None
    client_secret: SecretStr | None = None


class OnlyOAuth(Connection):
    credential = AccountGrant
    clients = (AccountsClient,)
    auth = OAuth2(  # never contacted: without its client, the connection cannot start
        slot=AccountGrant,
        authorize_url="https://optional.example/authorize",
        token_url="https://optional.example/token",
        scopes=("openid",),
    )
    disconnect = NoRevocation("remove the app in the provider's settings")


#: Its one connection needs the OAuth client, so without it nothing can be offered (``support.account_definition:
#: optional_client``).
optional_client = Definition(
    id="optional_client",
    name="Optional OAuth client",
    description="A definition whose only connection needs an OAuth client its config leaves optional.",
    operator_config=OptionalClientConfig,
    slots=(AccountGrant, AccountKey),
    clients=(AccountsClient,),
    connections=(OnlyOAuth,),
)
