"""The SCC client: an access token from a service account key, via a signed JWT bearer assertion (RFC 7523).

The key's ``client_email`` signs (RS256) a one-hour assertion for ``https://oauth2.googleapis.com/token`` with the
``cloud-platform`` scope; Google answers an access token. ``ServiceAccountAuth`` does this inside httpx's auth
flow, reuses the token and signs a new assertion shortly before it expires. The key's own ``token_uri`` is
ignored: a pasted key must not choose where its assertion is sent.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from definitions.gcp_scc.rest import check
from definitions.gcp_scc.slots import GcpServiceAccountKey, GcpWorkloadIdentity
from engine import Client, ClientContext, ProviderError
from engine.egress import egress_client, read_json
from engine.errors import ConfigurationError
from engine.jwt import load_rsa_private_key, sign_rs256

API_URL = "https://securitycenter.googleapis.com"
TOKEN_URL = "https://oauth2.googleapis.com/token"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
HEADERS = {"Accept": "application/json", "User-Agent": "Tether (gcp_scc)"}
ASSERTION_LIFETIME = 3600
REMINT_MARGIN = 5 * 60


@dataclass
class SccApi:
    """The HTTP client and the parent (organization, folder or project) it reads."""

    http: httpx.AsyncClient
    parent: str

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> SccApi:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


class SccClient(Client):
    """REST client for ``securitycenter.googleapis.com``."""

    slots = (GcpServiceAccountKey, GcpWorkloadIdentity)

    def build(self, ctx: ClientContext) -> SccApi:
        credential = ctx.credential
        if isinstance(credential, GcpWorkloadIdentity):
            raise NotImplementedError(
                "gcp_scc: workload identity federation is not built yet; connect with a service account key")
        if not isinstance(credential, GcpServiceAccountKey):
            raise TypeError(f"SccClient cannot be built from {type(credential).__name__}")
        email, key = load_key(credential.service_account_json.get_secret_value())
        auth = ServiceAccountAuth(client_email=email, private_key=key)
        return SccApi(egress_client(base_url=API_URL, headers=HEADERS, auth=auth), credential.parent)


def load_key(text: str) -> tuple[str, rsa.RSAPrivateKey]:
    """``client_email`` and the RSA key of a service account JSON key; nothing of the key enters an error."""
    not_a_key = "gcp_scc: the service account key is not a Google service account JSON key"
    try:
        data = json.loads(text)
        if data.get("type") != "service_account":
            raise ValueError
        email = str(data["client_email"])
        pem = str(data["private_key"])
    except (ValueError, TypeError, KeyError, AttributeError):
        raise ConfigurationError(not_a_key) from None
    return email, load_rsa_private_key(pem, error=not_a_key,
                                       not_rsa_error="gcp_scc: the service account key is not an RSA key")


class ServiceAccountAuth(httpx.Auth):
    """Bearer tokens minted from a signed assertion; a lock makes concurrent requests share one mint."""

    def __init__(self, *, client_email: str, private_key: rsa.RSAPrivateKey,
                 clock: Callable[[], float] = time.time) -> None:
        self.client_email = client_email
        self._key = private_key
        self.clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = anyio.Lock()

    def assertion(self) -> str:
        now = int(self.clock())
        claims = {"iss": self.client_email, "scope": SCOPE, "aud": TOKEN_URL, "iat": now,
                  "exp": now + ASSERTION_LIFETIME}
        return sign_rs256(self._key, claims)

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        async with self._lock:
            if self._token is None or self.clock() >= self._expires_at - REMINT_MARGIN:
                minted = yield httpx.Request("POST", TOKEN_URL, data={
                    "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": self.assertion()})
                await minted.aread()
                await self._store(minted)
            token = self._token
        request.headers["Authorization"] = f"Bearer {token}"
        yield request

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise TypeError("ServiceAccountAuth mints tokens asynchronously; use it with httpx.AsyncClient")

    async def _store(self, response: httpx.Response) -> None:
        if response.status_code in (400, 401):
            # invalid_grant: a deleted or disabled key, or a clock far off.
            raise ProviderError("Google refused the service account's token request",
                                provider_status=response.status_code, code="unauthorized")
        await check(response, "Google's token endpoint")
        body: Any = await read_json(response)
        try:
            self._token = str(body["access_token"])
            self._expires_at = self.clock() + float(body["expires_in"])
        except (TypeError, KeyError, ValueError):
            raise ProviderError("Google answered an unexpected token shape") from None

