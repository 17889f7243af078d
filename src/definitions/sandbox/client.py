"""The sandbox API client: one ``httpx.AsyncClient`` per credential, through the egress guard like every client.

An API key is sent as ``X-Api-Key``. An OAuth access token is sent as a bearer token; when the sandbox refuses it
with a 401 before its recorded expiry (its ``expire-tokens`` control, a real provider's early revocation), the
client asks the engine to renew it once (``ClientContext.renew_token``: one Keystore refresh, the rotated refresh
token persisted) and repeats the request. A dead grant makes that renewal raise ``reconnect_required``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator

import anyio
import httpx

from definitions.sandbox.api import API_PATH
from definitions.sandbox.slots import SandboxApiKey, SandboxToken
from engine import Client, ClientContext, ConfigurationError, RenewToken
from engine.kit.egress import egress_client

HEADERS = {"Accept": "application/json", "User-Agent": "Tether (sandbox)"}


class SandboxClient(Client):
    """REST client for ``{public_url}/sandbox/api/v1``, from whichever credential the active connection holds."""

    slots = (SandboxToken, SandboxApiKey)

    def build(self, ctx: ClientContext) -> httpx.AsyncClient:
        if not ctx.public_url:
            raise ConfigurationError("sandbox: the engine gave no public URL to reach the sandbox at")
        credential = ctx.credential
        auth: httpx.Auth
        if isinstance(credential, SandboxApiKey):
            auth = ApiKeyAuth(credential.api_key.get_secret_value())
        elif isinstance(credential, SandboxToken):
            auth = RenewingBearer(credential.access_token.get_secret_value(), ctx.renew_token)
        else:
            raise TypeError(f"SandboxClient cannot be built from {type(credential).__name__}")
        return egress_client(base_url=f"{ctx.public_url}{API_PATH}", headers=HEADERS, auth=auth)


class ApiKeyAuth(httpx.Auth):
    """``X-Api-Key: <key>`` on every request; the key never appears in ``repr``."""

    def __init__(self, key: str) -> None:
        self._key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["X-Api-Key"] = self._key
        yield request

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class RenewingBearer(httpx.Auth):
    """``Authorization: Bearer <token>``; a 401 renews the token once (per refusal) and repeats the request.

    Requests of one client that are refused together share one renewal (a lock, and the engine's own single
    flight across clients and processes). Without ``renew`` (a credential not saved yet) a 401 stands.
    """

    def __init__(self, token: str, renew: RenewToken | None) -> None:
        self._token = token
        self._renew = renew
        self._lock = anyio.Lock()

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        sent = self._token
        request.headers["Authorization"] = f"Bearer {sent}"
        response = yield request
        if response.status_code != 401 or self._renew is None:
            return
        async with self._lock:
            if self._token == sent:  # nobody renewed it meanwhile
                self._token = await self._renew(sent)
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise TypeError("RenewingBearer renews tokens asynchronously; use it with httpx.AsyncClient")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
