"""The Admin SDK client: one ``httpx.AsyncClient`` per credential, acting as an admin or as a service account.

An OAuth credential already holds a short-lived access token: the Keystore refreshes it before a client is built,
so the client just sends it. A service account has no token until it asks for one: it signs a JWT with its key
(RS256) naming the admin it acts for (``sub``, domain-wide delegation) and trades it at Google's token endpoint
for an hour-long access token (RFC 7523 JWT bearer grant). ``ServiceAccountAuth`` does that inside httpx's auth
flow, reuses the token, and mints a new one shortly before it expires.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import cast

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from definitions.google_workspace.config import GoogleWorkspaceInput
from definitions.google_workspace.rest import raise_for_status
from definitions.google_workspace.slots import GoogleServiceAccountKey, GoogleWorkspaceOAuthToken
from engine import Client, ClientContext, ConfigurationError, ProviderError
from engine.kit.egress import egress_client
from engine.kit.jwt import load_rsa_private_key, sign_rs256
from engine.kit.providerkit import BearerAuth, MintedTokenAuth, token_answer

API_URL = "https://admin.googleapis.com"
#: The only place an assertion is sent. The key file's own ``token_uri`` is ignored: a pasted key must not be
#: able to send a signed assertion anywhere else.
TOKEN_URL = "https://oauth2.googleapis.com/token"
SCOPES = (
    "https://www.googleapis.com/auth/admin.directory.user.readonly",
    "https://www.googleapis.com/auth/admin.directory.group.readonly",
    "https://www.googleapis.com/auth/admin.directory.group.member.readonly",
    "https://www.googleapis.com/auth/admin.directory.customer.readonly",
)
HEADERS = {"Accept": "application/json", "User-Agent": "Tether (google_workspace)"}
#: Google accepts assertions valid for at most an hour.
JWT_LIFETIME = 3600


class GoogleWorkspaceClient(Client):
    """REST client for ``admin.googleapis.com``, built from whichever credential the active connection holds."""

    slots = (GoogleWorkspaceOAuthToken, GoogleServiceAccountKey)

    def build(self, ctx: ClientContext) -> httpx.AsyncClient:
        credential = ctx.credential
        if isinstance(credential, GoogleWorkspaceOAuthToken):
            return _http_client(BearerAuth(credential.access_token.get_secret_value()))
        if not isinstance(credential, GoogleServiceAccountKey):
            raise TypeError(f"GoogleWorkspaceClient cannot be built from {type(credential).__name__}")
        user_input = cast(GoogleWorkspaceInput | None, ctx.user_input)
        key = parse_service_account_key(credential.key_json.get_secret_value())
        return _http_client(ServiceAccountAuth(
            client_email=key["client_email"],
            private_key=key["private_key"],
            subject=user_input.admin_email if user_input else "",
        ))


def _http_client(auth: httpx.Auth) -> httpx.AsyncClient:
    """Every request goes through the egress guard (https only, no private addresses, bounded bodies)."""
    return egress_client(base_url=API_URL, headers=HEADERS, auth=auth)


def parse_service_account_key(text: str) -> dict[str, str]:
    """The fields of a service account JSON key that Tether uses; a malformed key is a configuration error.

    The message never repeats the key: it names what is missing.
    """
    try:
        key = json.loads(text)
    except ValueError:
        key = None
    if not isinstance(key, dict) or key.get("type") != "service_account":
        raise ConfigurationError("google_workspace: the key is not a service account JSON key")
    missing = [f for f in ("client_email", "private_key") if not isinstance(key.get(f), str) or not key.get(f)]
    if missing:
        raise ConfigurationError(f"google_workspace: the service account key lacks {', '.join(missing)}")
    return {"client_email": key["client_email"], "private_key": key["private_key"]}


class ServiceAccountAuth(MintedTokenAuth):
    """Authenticates as a service account impersonating ``subject`` (domain-wide delegation).

    Without a ``subject`` Google would answer with the service account's own (directory-less) identity, so the
    first request fails with ``admin_email_missing`` instead.
    """

    def __init__(self, *, client_email: str, private_key: str, subject: str,
                 scopes: tuple[str, ...] = SCOPES, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock=clock)
        self.client_email = client_email
        self.subject = subject
        self.scopes = scopes
        self._key = _load_private_key(private_key)

    def assertion(self) -> str:
        """The RS256 JWT Google trades for an access token (RFC 7523 §2.1)."""
        now = int(self.clock())
        claims = {"iss": self.client_email, "sub": self.subject, "scope": " ".join(self.scopes),
                  "aud": TOKEN_URL, "iat": now, "exp": now + JWT_LIFETIME}
        return sign_rs256(self._key, claims)

    def check_ready(self) -> None:
        if not self.subject:
            raise ProviderError("Google Workspace needs the admin email the service account acts for",
                                code="admin_email_missing")

    def mint_request(self) -> httpx.Request:
        return httpx.Request("POST", TOKEN_URL, data={
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": self.assertion(),
        })

    async def read_token(self, response: httpx.Response) -> tuple[str, float]:
        if response.status_code in (400, 401):
            # invalid_grant / unauthorized_client: the key was deleted, or delegation is not granted for the scopes.
            raise ProviderError("Google refused the service account assertion", provider_status=response.status_code,
                                code="unauthorized")
        raise_for_status(response)
        return await token_answer(response, provider="Google")


def _load_private_key(pem: str) -> rsa.RSAPrivateKey:
    return load_rsa_private_key(pem, error="google_workspace: the service account private_key is not a PEM RSA key")
