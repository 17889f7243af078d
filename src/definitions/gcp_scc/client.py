"""The SCC client: an access token from a service account key (RFC 7523), or by workload identity federation.

The key's ``client_email`` signs (RS256) a one-hour assertion for ``https://oauth2.googleapis.com/token`` with the
``cloud-platform`` scope; Google answers an access token. ``ServiceAccountAuth`` does this inside httpx's auth
flow, reuses the token and signs a new assertion shortly before it expires. The key's own ``token_uri`` is
ignored: a pasted key must not choose where its assertion is sent.

Workload identity federation (``WorkloadIdentityAuth``) stores no secret: Tether is the OIDC issuer the
customer's pool trusts. The engine hands the client build Tether's identity for the integration
(``ClientContext.identity_token``: ``sub`` = ``tether:{tenant}:{integration}``); the auth asks it for a five-minute
subject token whose ``aud`` is the pool provider's resource name, exchanges it at Google STS (RFC 8693) for a
federated token and, when a service account is named, exchanges that for the service account's access token
(``generateAccessToken``). The token is reused until shortly before it expires, like the key's.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
import httpx
import re2
from cryptography.hazmat.primitives.asymmetric import rsa

from definitions.gcp_scc.rest import check
from definitions.gcp_scc.slots import GcpServiceAccountKey, GcpWorkloadIdentity
from engine import Client, ClientContext, ConfigurationError, IdentityToken, ProviderError
from engine.kit.egress import egress_client, read_json
from engine.kit.jwt import load_rsa_private_key, sign_rs256
from engine.kit.providerkit import MintedTokenAuth, token_answer

API_URL = "https://securitycenter.googleapis.com"
TOKEN_URL = "https://oauth2.googleapis.com/token"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
HEADERS = {"Accept": "application/json", "User-Agent": "Tether (gcp_scc)"}
ASSERTION_LIFETIME = 3600
REMINT_MARGIN = 5 * 60
STS_URL = "https://sts.googleapis.com/v1/token"
IAM_CREDENTIALS_URL = "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{email}:generateAccessToken"
SUBJECT_TOKEN_LIFETIME = 300
#: A service account email goes into the generateAccessToken URL path: only this shape is accepted.
# RE2: a tenant-entered credential field, and Google's answers below (ASCII-only patterns: isascii() first, since RE2
# raises on a str it cannot encode as UTF-8)
SERVICE_ACCOUNT_EMAIL = re2.compile(r"[a-z0-9][a-z0-9.-]{0,99}@[a-z0-9][a-z0-9.-]{0,99}\.gserviceaccount\.com")


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
            if ctx.identity_token is None:
                raise ConfigurationError("gcp_scc: workload identity federation needs Tether's identity, which this "
                                         "client build was not given")
            wif = WorkloadIdentityAuth(identity_token=ctx.identity_token, audience=pool_audience(credential),
                                       service_account_email=credential.service_account_email)
            return SccApi(egress_client(base_url=API_URL, headers=HEADERS, auth=wif), credential.parent)
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


class ServiceAccountAuth(MintedTokenAuth):
    """Bearer tokens minted from a signed assertion."""

    def __init__(self, *, client_email: str, private_key: rsa.RSAPrivateKey,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock=clock)
        self.client_email = client_email
        self._key = private_key

    def assertion(self) -> str:
        now = int(self.clock())
        claims = {"iss": self.client_email, "scope": SCOPE, "aud": TOKEN_URL, "iat": now,
                  "exp": now + ASSERTION_LIFETIME}
        return sign_rs256(self._key, claims)

    def mint_request(self) -> httpx.Request:
        return httpx.Request("POST", TOKEN_URL, data={
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": self.assertion()})

    async def read_token(self, response: httpx.Response) -> tuple[str, float]:
        if response.status_code in (400, 401):
            # invalid_grant: a deleted or disabled key, or a clock far off.
            raise ProviderError("Google refused the service account's token request",
                                provider_status=response.status_code, code="unauthorized")
        await check(response, "Google's token endpoint")
        return await token_answer(response, provider="Google")


def pool_audience(credential: GcpWorkloadIdentity) -> str:
    """The workload identity pool provider's full resource name: the subject token's ``aud``."""
    return (f"//iam.googleapis.com/projects/{credential.project_number}/locations/global/"
            f"workloadIdentityPools/{credential.pool_id}/providers/{credential.provider_id}")


class WorkloadIdentityAuth(httpx.Auth):
    """Bearer tokens from Tether's OIDC subject token, exchanged at Google STS (then impersonation, if set).

    Not the kit's ``MintedTokenAuth``: a mint here is two requests (STS, then IAM credentials with the federated
    token), and the kit's flow sends one.
    """

    def __init__(self, *, identity_token: IdentityToken, audience: str, service_account_email: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if service_account_email is not None and not (
            service_account_email.isascii() and SERVICE_ACCOUNT_EMAIL.fullmatch(service_account_email)
        ):
            raise ConfigurationError("gcp_scc: service_account_email is not a Google service account email")
        self.identity_token = identity_token
        self.audience = audience
        self.client_email = service_account_email
        self.clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = anyio.Lock()

    def subject_token(self) -> str:
        return self.identity_token(self.audience, SUBJECT_TOKEN_LIFETIME)

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        async with self._lock:
            if self._token is None or self.clock() >= self._expires_at - REMINT_MARGIN:
                exchanged = yield httpx.Request("POST", STS_URL, data={
                    "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                    "audience": self.audience,
                    "scope": SCOPE,
                    "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
                    "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
                    "subject_token": await anyio.to_thread.run_sync(self.subject_token),
                }, headers={"Accept": "application/json"})
                await exchanged.aread()
                federated, expires_at = await self._federated(exchanged)
                if self.client_email:
                    impersonated = yield httpx.Request(
                        "POST", IAM_CREDENTIALS_URL.format(email=self.client_email), json={"scope": [SCOPE]},
                        headers={"Authorization": f"Bearer {federated}", "Accept": "application/json"})
                    await impersonated.aread()
                    federated, expires_at = await self._impersonated(impersonated)
                self._token, self._expires_at = federated, expires_at
            token = self._token
        request.headers["Authorization"] = f"Bearer {token}"
        yield request

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise TypeError("WorkloadIdentityAuth mints tokens asynchronously; use it with httpx.AsyncClient")

    async def _federated(self, response: httpx.Response) -> tuple[str, float]:
        if response.status_code in (400, 401, 403):
            # invalid_grant / unauthorized_client: the pool, provider or its attribute condition refused the token.
            raise ProviderError("Google STS refused Tether's federation token", provider_status=response.status_code,
                                code="unauthorized")
        await check(response, "Google STS")
        body: Any = await read_json(response)
        try:
            return str(body["access_token"]), self.clock() + float(body["expires_in"])
        except (TypeError, KeyError, ValueError):
            raise ProviderError("Google STS answered an unexpected token shape") from None

    async def _impersonated(self, response: httpx.Response) -> tuple[str, float]:
        body: Any = await check(response, "Google IAM credentials")
        try:
            token = str(body["accessToken"])
            expires = parse_expire_time(str(body["expireTime"]))
        except (TypeError, KeyError, ValueError):
            raise ProviderError("Google IAM credentials answered an unexpected token shape") from None
        return token, self.clock() + (expires - time.time())


_EXPIRE_TIME = re2.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})")


def parse_expire_time(value: str) -> float:
    """An RFC 3339 timestamp (``Z``, up to nanoseconds) as epoch seconds."""
    match = _EXPIRE_TIME.fullmatch(value) if value.isascii() else None
    if match is None:
        raise ValueError("not an RFC 3339 timestamp")
    zone = "+00:00" if match[3] == "Z" else match[3]
    return datetime.fromisoformat(match[1] + zone).timestamp() + float(f"0.{match[2] or 0}")
