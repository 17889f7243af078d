"""The GitHub API client: one ``httpx.AsyncClient`` per credential, acting as an app installation or a person.

A GitHub App authenticates in two steps. It signs a short JSON Web Token with its private key (the *app JWT*,
accepted only by the ``/app/…`` endpoints), and trades that JWT for an *installation token* that acts on the
accounts that installed it, for one hour. ``InstallationAuth`` does both inside httpx's auth flow, so
operations just call ``client.get(...)``: the token is minted on first use, reused, and minted again shortly
before it expires. A personal access token is simply sent as a bearer token.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable, Generator
from datetime import datetime
from typing import cast

import anyio
import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from definitions.github_app.config import GitHubAppConfig
from definitions.github_app.rest import raise_for_status
from definitions.github_app.slots import GitHubAppInstallation, GitHubPersonalAccessToken
from engine import Client, ClientContext, ConfigurationError, ProviderError
from engine.kit.egress import egress_client, read_json
from engine.kit.jwt import load_rsa_private_key, sign_rs256
from engine.kit.providerkit import BearerAuth

API_URL = "https://api.github.com"
HEADERS = {
    "Accept": "application/vnd.github+json",
    "X-GitHub-Api-Version": "2022-11-28",
    "User-Agent": "Tether (github_app)",
}
#: GitHub refuses app JWTs that live longer than 10 minutes; 9 leaves room for clock drift.
JWT_LIFETIME = 9 * 60
#: ``iat`` is back-dated a minute because GitHub rejects JWTs issued "in the future" by a fast clock.
JWT_BACKDATE = 60
#: Mint a new installation token this long before the current one expires, so no request carries a stale one.
REMINT_MARGIN = 5 * 60


class GitHubClient(Client):
    """REST client for ``api.github.com``, built from whichever credential the active connection holds."""

    slots = (GitHubAppInstallation, GitHubPersonalAccessToken)

    def build(self, ctx: ClientContext) -> httpx.AsyncClient:
        credential = ctx.credential
        if isinstance(credential, GitHubPersonalAccessToken):
            return _http_client(BearerAuth(credential.token.get_secret_value()))
        if not isinstance(credential, GitHubAppInstallation):
            raise TypeError(f"GitHubClient cannot be built from {type(credential).__name__}")
        if ctx.operator_config is None:
            raise ConfigurationError("github_app: the GitHub App operator config is not set")
        config = cast(GitHubAppConfig, ctx.operator_config)
        return _http_client(InstallationAuth(
            app_id=config.app_id,
            private_key=config.private_key.get_secret_value(),
            installation_id=credential.installation_id,
        ))


def installation_scoped(client: httpx.AsyncClient) -> bool:
    """Whether ``client`` acts as an app installation (else as a person); they list repos differently."""
    return isinstance(client.auth, InstallationAuth)


def _http_client(auth: httpx.Auth) -> httpx.AsyncClient:
    """Every request goes through the egress guard (https only, no private addresses, bounded bodies)."""
    return egress_client(base_url=API_URL, headers=HEADERS, auth=auth)


class InstallationAuth(httpx.Auth):
    """Authenticates as one installation of the app.

    ``/app/…`` endpoints (the installation itself, minting tokens, uninstalling) get a fresh app JWT; every
    other request gets the installation token, minted through the same client the first time it is needed and
    cached until ``REMINT_MARGIN`` before its ``expires_at``. A lock makes concurrent requests share one mint.

    Not the kit's ``MintedTokenAuth``: ``/app/…`` requests carry the app JWT rather than the token, the mint goes to
    the origin of the request being sent (the client's base URL, which a test or GitHub Enterprise changes), and
    GitHub answers an absolute ``expires_at`` rather than ``expires_in``; the kit's mint sees none of that.
    """

    def __init__(self, *, app_id: str, private_key: str, installation_id: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.app_id = app_id
        self.installation_id = installation_id
        #: Seconds since the epoch; replaceable so tests can move time forward.
        self.clock = clock
        self._key = load_private_key(private_key)
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = anyio.Lock()

    def app_jwt(self) -> str:
        """An RS256 JWT identifying the app (not an installation), valid for ``JWT_LIFETIME`` seconds."""
        now = int(self.clock())
        return sign_rs256(self._key, {"iat": now - JWT_BACKDATE, "exp": now + JWT_LIFETIME, "iss": self.app_id})

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if request.url.path.startswith("/app/"):
            request.headers["Authorization"] = f"Bearer {self.app_jwt()}"
            yield request
            return
        async with self._lock:
            if self._token is None or self.clock() >= self._expires_at - REMINT_MARGIN:
                minted = yield self._mint_request(request)
                await minted.aread()
                await self._store(minted)
            token = self._token
        request.headers["Authorization"] = f"Bearer {token}"
        yield request

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise TypeError("InstallationAuth mints tokens asynchronously; use it with httpx.AsyncClient")

    def _mint_request(self, request: httpx.Request) -> httpx.Request:
        """``POST /app/installations/{id}/access_tokens`` signed with the app JWT, to the same API origin."""
        headers = {name: request.headers[name] for name in HEADERS if name in request.headers}
        return httpx.Request(
            "POST",
            request.url.join(f"/app/installations/{self.installation_id}/access_tokens"),
            headers={**headers, "Authorization": f"Bearer {self.app_jwt()}"},
        )

    async def _store(self, response: httpx.Response) -> None:
        raise_for_status(response)
        body = await read_json(response)
        try:
            self._token = str(body["token"])
            self._expires_at = datetime.fromisoformat(body["expires_at"]).timestamp()
        except (TypeError, KeyError, ValueError):
            raise ProviderError("GitHub answered an unexpected installation token shape") from None


def load_private_key(pem: str) -> rsa.RSAPrivateKey:
    """Parse the app's PEM key; newlines escaped as ``\\n`` (to fit a PEM in one env var) are accepted."""
    return load_rsa_private_key(pem, unescape_newlines=True,
                                error="github_app: private_key is not an unencrypted PEM RSA private key")
