"""The principal boundary: who is calling, as far as Tether trusts it.

The host app authenticates its users; Tether only accepts a principal (tenant + owner + role) from

- an API key (``Authorization: Bearer tk_…``), stored as a SHA-256 digest, created with ``tether api-keys create``;
- or a signed principal header, ``X-Tether-Principal: <payload>.<signature>``, where ``payload`` is base64url JSON
  ``{"tenant": …, "owner": …, "role": "user"|"server", "exp": <unix seconds>, "sid": <browser session>}`` and
  ``signature`` is base64url HMAC-SHA256 of the payload text under ``TETHER_SECRET_PRINCIPAL_KEY``.

``server`` principals (the host app's back end) act for every owner of their tenant and may fetch access tokens;
``user`` principals see only their own integrations. Everything is scoped by tenant, and a record of another
tenant or owner is reported as not found, never as forbidden, so existence does not leak.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
import time
from dataclasses import dataclass
from typing import Literal

from fastapi import Request
from sqlmodel import select

from engine.api.fields import OWNER_ID_MAX, TENANT_ID_MAX
from engine.errors import TetherError
from engine.kit.inputs import fits, storable
from engine.store.database import Database
from engine.store.tables import ApiKey, Integration

HEADER = "X-Tether-Principal"
KEY_PREFIX = "tk_"
Role = Literal["server", "user"]


class Unauthenticated(TetherError):
    code = "unauthenticated"
    status = 401


class Forbidden(TetherError):
    code = "forbidden"
    status = 403


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    role: Role
    #: The owner a ``user`` principal is; empty for ``server`` principals.
    owner_id: str = ""
    #: The browser session behind a ``user`` principal, which auth flows are bound to.
    session_id: str = ""

    @property
    def is_server(self) -> bool:
        return self.role == "server"

    def can_see(self, integration: Integration) -> bool:
        return integration.tenant_id == self.tenant_id and (self.is_server or integration.owner_id == self.owner_id)

    def require_server(self) -> None:
        if not self.is_server:
            raise Forbidden("this endpoint is for the host app's server")


# -- signed header ---------------------------------------------------------------------------------------------


def sign_principal(
    secret: str, *, tenant: str, role: Role, owner: str = "", session: str = "", ttl_seconds: int = 300
) -> str:
    """A header value for ``X-Tether-Principal`` (what a host app's server does per request)."""
    payload = {"tenant": tenant, "owner": owner, "role": role, "sid": session, "exp": int(time.time()) + ttl_seconds}
    text = _b64(json.dumps(payload, separators=(",", ":")).encode())
    return f"{text}.{_b64(hmac.new(secret.encode(), text.encode(), hashlib.sha256).digest())}"


def verify_principal(value: str, secret: str, *, now: float | None = None) -> Principal:
    if not secret:
        raise Unauthenticated("signed principal headers are not enabled on this server")
    if not value.isascii():
        # Headers and cookies arrive decoded as Latin-1; base64url is ASCII, and compare_digest refuses the rest.
        raise Unauthenticated("the principal header is malformed")
    text, _, signature = value.partition(".")
    expected = _b64(hmac.new(secret.encode(), text.encode(), hashlib.sha256).digest())
    if not signature or not hmac.compare_digest(signature, expected):
        raise Unauthenticated("the principal header's signature does not verify")
    try:
        payload = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        tenant, role, exp = str(payload["tenant"]), payload["role"], _expiry(payload["exp"])
        owner, session = str(payload.get("owner", "")), str(payload.get("sid", ""))
    except (ValueError, KeyError, TypeError):
        raise Unauthenticated("the principal header is malformed") from None
    if exp < (time.time() if now is None else now):
        raise Unauthenticated("the principal header has expired")
    return _principal(tenant, role, owner, session)


def _expiry(value: object) -> float:
    """``exp`` as a finite number of seconds: ``"nan"``, ``"inf"`` or ``1e309`` would compare as never expired."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError("exp is not a finite number")
    return float(value)


# -- API keys ----------------------------------------------------------------------------------------------------


def create_api_key(db: Database, *, tenant: str, role: Role, owner: str = "", name: str = "") -> tuple[str, ApiKey]:
    """Create a key; the plain key is returned once and never stored."""
    plain = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(tenant_id=tenant, role=role, owner_id=owner, name=name, key_hash=_digest(plain), prefix=plain[:10])
    _principal(tenant, role, owner, "")  # validates the combination
    with db.session() as session:
        session.add(row)
    return plain, row


def authenticate_api_key(db: Database, plain: str) -> Principal:
    with db.session() as session:
        row = session.exec(select(ApiKey).where(ApiKey.key_hash == _digest(plain))).first()
    if row is None or row.revoked_at is not None:
        raise Unauthenticated("unknown or revoked API key")
    return _principal(row.tenant_id, row.role, row.owner_id, "")  # type: ignore[arg-type]


# -- FastAPI dependency ------------------------------------------------------------------------------------------


def current_principal(request: Request) -> Principal:
    """Resolve the caller from an API key, a signed header or a session cookie; 401 ``unauthenticated`` otherwise."""
    runtime = request.app.state.runtime
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return authenticate_api_key(runtime.db, authorization[7:].strip())
    signed = request.headers.get(HEADER)
    if signed:
        return verify_principal(signed, runtime.settings.secret_principal_key.get_secret_value())
    # The integrations page's development login (engine.web.session): same format, its own key, and a custom
    # header on state-changing requests so that a cross-site form cannot ride on the cookie.
    from engine.web.session import CSRF_HEADER, SESSION_COOKIE, session_key

    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        key = session_key(runtime)
        if not key:
            raise Unauthenticated("browser sessions (the development login) are not enabled on this server")
        principal = verify_principal(cookie, key)
        if request.method not in ("GET", "HEAD", "OPTIONS") and request.headers.get(CSRF_HEADER) != "1":
            raise Forbidden(f"a cookie-authenticated {request.method} needs the header {CSRF_HEADER}: 1")
        return principal
    raise Unauthenticated("send an API key (Authorization: Bearer) or a signed X-Tether-Principal header")


def _principal(tenant: str, role: str, owner: str, session: str) -> Principal:
    if not tenant or role not in ("server", "user") or (role == "user" and not owner):
        raise Unauthenticated("a principal needs a tenant, a role, and an owner for user principals")
    # A host app may sign whatever its user typed: a tenant or owner the store cannot hold (NUL, a lone surrogate,
    # longer than its column) would reach the database as a 500 on the first query.
    if not (fits(tenant, TENANT_ID_MAX) and fits(owner, OWNER_ID_MAX) and storable(session)):
        raise Unauthenticated("the principal's tenant, owner or session is not storable text of a sane length")
    return Principal(tenant_id=tenant, role=role, owner_id=owner if role == "user" else "", session_id=session)  # type: ignore[arg-type]


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
