"""The ``X-Tether-Principal`` header, signed by the host app's server (docs/principal-header.md).

``payload`` is unpadded base64url of the JSON claims, ``signature`` unpadded base64url HMAC-SHA256 of the payload
text under the key Tether has as ``TETHER_SECRET_PRINCIPAL_KEY``; the two joined by a dot.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Generator
from typing import Literal

import httpx

HEADER = "X-Tether-Principal"
Role = Literal["user", "server"]


def sign_principal(
    key: str, tenant: str, owner: str = "", role: Role = "user", ttl: int = 300, *, session: str = ""
) -> str:
    """A header value valid for ``ttl`` seconds: ``role="user"`` (needs ``owner``) or ``"server"``."""
    if role == "user" and not owner:
        raise ValueError("a user principal needs an owner")
    claims = {"tenant": tenant, "owner": owner, "role": role, "sid": session, "exp": int(time.time()) + ttl}
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode("utf-8"))
    signature = _b64url(hmac.new(key.encode("utf-8"), payload.encode("ascii"), hashlib.sha256).digest())
    return f"{payload}.{signature}"


class PrincipalSigner(httpx.Auth):
    """Signs a fresh header for every request, so a long-lived client never sends an expired one."""

    def __init__(
        self, key: str, tenant: str, owner: str = "", role: Role = "user", ttl: int = 300, *, session: str = ""
    ) -> None:
        sign_principal(key, tenant, owner, role, ttl, session=session)  # refuses a bad combination now
        self._key, self._tenant, self._owner, self._role, self._ttl = key, tenant, owner, role, ttl
        self._session = session

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[HEADER] = sign_principal(
            self._key, self._tenant, self._owner, self._role, self._ttl, session=self._session
        )
        yield request

    def __repr__(self) -> str:  # the key stays out of logs and tracebacks
        return f"PrincipalSigner(tenant={self._tenant!r}, owner={self._owner!r}, role={self._role!r})"


class ApiKey(httpx.Auth):
    """``Authorization: Bearer tk_…``."""

    def __init__(self, key: str) -> None:
        self._key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._key}"
        yield request

    def __repr__(self) -> str:  # the key stays out of logs and tracebacks
        return "ApiKey(tk_…)"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
