"""Who an MCP request is for: Tether as an OAuth 2.1 resource server (the MCP authorization spec).

Every request to ``/mcp`` carries ``Authorization: Bearer <token>``, one of

- an **API key** (``tk_…``, ``tether api-keys create``): a ``user`` key is one owner's; a ``server`` key (a
  server-side agent of the host app) names the owner it acts for in ``X-Tether-Owner``, since a key of the whole
  tenant would make every owner's integrations one tool list;
- an **access token the host app issued** for its signed-in user: the signed principal format
  (``engine.api.principal``: base64url JSON, a dot, its HMAC-SHA256 under ``TETHER_SECRET_PRINCIPAL_KEY``) with
  ``role: "user"`` and ``aud`` naming this resource (``{public_url}/mcp``, RFC 8707): a token minted for another
  resource, or without an audience, is refused, so a principal header a browser holds cannot be replayed here.
  The host app's authorization server (``TETHER_MCP_AUTHORIZATION_SERVERS``) runs the OAuth flow with the MCP client
  and mints it (``issue_access_token``).

Anything else is 401 with ``WWW-Authenticate: Bearer resource_metadata="…"`` (RFC 9728 §5.1), which is how an MCP
client finds the authorization server. The user is always one owner of one tenant: tools, resources and runs are
that owner's only, and no token of an integration ever reaches the MCP client.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from engine.api.fields import OWNER_ID_MAX
from engine.api.principal import KEY_PREFIX, Principal, Unauthenticated, authenticate_api_key, verify_principal
from engine.kit.inputs import fits
from engine.runtime import Runtime

#: The header a ``server`` key names its owner with.
OWNER_HEADER = "X-Tether-Owner"
#: Where the resource's metadata is (RFC 9728 §3.1: the well-known prefix, then the resource's path).
METADATA_PATH = "/.well-known/oauth-protected-resource"
MCP_PATH = "/mcp"
#: Longest bearer value read: an API key or a signed principal is far shorter.
MAX_TOKEN = 4096


@dataclass(frozen=True)
class McpUser:
    """The owner an MCP request acts for, and the principal that vouched for it (its role decides what it may run:
    a ``server`` key may run writes the operation keeps from users, as over the REST API)."""

    principal: Principal
    owner_id: str

    @property
    def tenant_id(self) -> str:
        return self.principal.tenant_id


class OwnerRequired(Unauthenticated):
    """A ``server`` key without ``X-Tether-Owner``: whose integrations would its tools be?"""

    code = "mcp_owner_required"
    status = 400


def resource_url(runtime: Runtime) -> str:
    return runtime.settings.public_url.rstrip("/") + MCP_PATH


def metadata_url(runtime: Runtime) -> str:
    return runtime.settings.public_url.rstrip("/") + METADATA_PATH + MCP_PATH


def authenticate(request: Request, runtime: Runtime) -> McpUser:
    """The MCP user of a request; ``Unauthenticated`` (401) or ``OwnerRequired`` (400) otherwise."""
    authorization = request.headers.get("authorization", "")
    if authorization[:7].lower() != "bearer " or not authorization[7:].strip():
        raise Unauthenticated("send an access token or API key as Authorization: Bearer")
    token = authorization[7:].strip()
    if len(token) > MAX_TOKEN:
        raise Unauthenticated("the bearer token is not one this server issued")
    if token.startswith(KEY_PREFIX):
        principal = authenticate_api_key(runtime.db, token)
        if principal.is_server:
            owner = request.headers.get(OWNER_HEADER, "").strip()
            if not owner:
                raise OwnerRequired(f"a server API key names the owner it acts for in {OWNER_HEADER}")
            if not fits(owner, OWNER_ID_MAX):
                raise OwnerRequired(f"{OWNER_HEADER} is not an owner ID (printable text of a sane length)")
            return McpUser(principal, owner)
        return McpUser(principal, principal.owner_id)
    return McpUser(*_access_token(token, runtime))


def _access_token(token: str, runtime: Runtime) -> tuple[Principal, str]:
    principal = verify_principal(token, runtime.settings.secret_principal_key.get_secret_value())
    if principal.is_server:
        raise Unauthenticated("an MCP access token is a user's; server-side agents use an API key")
    if _audience(token) != resource_url(runtime):
        raise Unauthenticated(f"the access token was not issued for this resource ({resource_url(runtime)})")
    return principal, principal.owner_id


def _audience(token: str) -> Any:
    """The ``aud`` of a token whose signature already verified (``verify_principal`` parsed it once)."""
    text = token.partition(".")[0]
    try:
        return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))).get("aud")
    except (ValueError, binascii.Error, AttributeError):
        return None


def issue_access_token(secret: str, *, resource: str, tenant: str, owner: str, ttl_seconds: int = 3600) -> str:
    """An MCP access token for ``owner`` (what a host app's authorization server mints at the end of its flow)."""
    payload = {"tenant": tenant, "owner": owner, "role": "user", "aud": resource, "exp": int(time.time()) + ttl_seconds}
    text = _b64(json.dumps(payload, separators=(",", ":")).encode())
    return f"{text}.{_b64(hmac.new(secret.encode(), text.encode(), hashlib.sha256).digest())}"


def challenge(runtime: Runtime, error: Unauthenticated, *, token_sent: bool) -> Response:
    """The 401 (or 400) answer: Tether's error envelope, and the challenge that points at the resource metadata
    (with ``error="invalid_token"`` when a token was sent and refused, RFC 6750 §3.1)."""
    body = {"error": {"code": error.code, "message": error.message}}
    if error.status != 401:
        return JSONResponse(body, status_code=error.status)
    value = f'Bearer resource_metadata="{metadata_url(runtime)}"'
    if token_sent:
        value += ', error="invalid_token"'
    return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": value})


def resource_metadata(runtime: Runtime) -> dict[str, Any]:
    """RFC 9728 Protected Resource Metadata of ``/mcp``. ``authorization_servers`` is the host app's (the MCP
    spec's discovery needs one); without one configured, only API keys and host-minted tokens work."""
    document: dict[str, Any] = {
        "resource": resource_url(runtime),
        "bearer_methods_supported": ["header"],
        "resource_name": "Tether",
    }
    servers = runtime.settings.mcp_authorization_servers()
    if servers:
        document["authorization_servers"] = servers
    return document


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
