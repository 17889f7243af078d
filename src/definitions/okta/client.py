"""The Okta API client: one ``httpx.AsyncClient`` per credential, for the org URL the user entered.

The org URL is user input, so the client is built with ``egress_client`` like every other: each request and
redirect is refused unless it is https to a public address. An API token is sent as ``SSWS <token>``. A service
app first trades a signed client assertion (``private_key_jwt``, RS256) for an access token at the org
authorization server (``/oauth2/v1/token``); ``ServiceAppAuth`` does that inside httpx's auth flow, reuses the
token and mints a new one shortly before it expires.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from definitions.okta.api import raise_for_status
from definitions.okta.config import OktaSettings
from definitions.okta.slots import OktaApiToken, OktaServiceApp
from engine import Client, ClientContext, ConfigurationError, ProviderError
from engine.kit.egress import egress_client
from engine.kit.jwt import load_rsa_private_key, sign_rs256
from engine.kit.providerkit import BearerAuth, MintedTokenAuth, token_answer

HEADERS = {"Accept": "application/json", "User-Agent": "Tether (okta)"}
#: Read-only management scopes granted to the service app (Okta API Scopes tab).
SCOPES = ("okta.users.read", "okta.groups.read")
#: Okta accepts client assertions that live at most an hour; five minutes is plenty for one exchange.
ASSERTION_LIFETIME = 5 * 60


class OktaClient(Client):
    """Management API client for the org in the integration's ``org_url``."""

    slots = (OktaApiToken, OktaServiceApp)

    def build(self, ctx: ClientContext) -> httpx.AsyncClient:
        if not isinstance(ctx.user_input, OktaSettings):
            raise ConfigurationError("okta: the integration has no org URL")
        org_url = ctx.user_input.org_url
        credential = ctx.credential
        auth: httpx.Auth
        if isinstance(credential, OktaApiToken):
            auth = BearerAuth(credential.api_token.get_secret_value(), scheme="SSWS")
        elif isinstance(credential, OktaServiceApp):
            auth = ServiceAppAuth(client_id=credential.client_id, private_key=credential.private_key.get_secret_value(),
                                  key_id=credential.key_id, token_url=f"{org_url}/oauth2/v1/token")
        else:
            raise TypeError(f"OktaClient cannot be built from {type(credential).__name__}")
        return egress_client(base_url=org_url, headers=HEADERS, auth=auth)


class ServiceAppAuth(MintedTokenAuth):
    """Client credentials with ``private_key_jwt``."""

    def __init__(self, *, client_id: str, private_key: str, key_id: str | None, token_url: str,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock=clock)
        self.client_id = client_id
        self.key_id = key_id
        self.token_url = token_url
        self._key = _load_private_key(private_key)

    def client_assertion(self) -> str:
        now = int(self.clock())
        claims: dict[str, object] = {"iss": self.client_id, "sub": self.client_id, "aud": self.token_url,
                                     "iat": now, "exp": now + ASSERTION_LIFETIME, "jti": secrets.token_urlsafe(16)}
        return sign_rs256(self._key, claims, headers={"kid": self.key_id} if self.key_id else None)

    def mint_request(self) -> httpx.Request:
        return httpx.Request("POST", self.token_url, headers={"Accept": "application/json"}, data={
            "grant_type": "client_credentials",
            "scope": " ".join(SCOPES),
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": self.client_assertion(),
        })

    async def read_token(self, response: httpx.Response) -> tuple[str, float]:
        if response.status_code in (400, 401):
            # invalid_client / invalid_scope: the app, its key or its granted scopes are wrong.
            raise ProviderError("Okta refused the service app's client assertion", provider_status=response.status_code,
                                code="unauthorized")
        raise_for_status(response)
        return await token_answer(response, provider="Okta", default_lifetime=3600)


def _load_private_key(pem: str) -> rsa.RSAPrivateKey:
    """Parse the app's PEM key; newlines escaped as ``\\n`` are accepted."""
    return load_rsa_private_key(
        pem, unescape_newlines=True,
        error="okta: the service app's private_key is not an unencrypted PEM RSA private key")
