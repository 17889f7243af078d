"""OAuth 2.0 client operations (authorization code + PKCE, refresh, client credentials, RFC 7009 revocation).

Why this module exists: the protocol work is authlib's (``AsyncOAuth2Client``, its httpx integration), but every
request it sends must pass the egress guard, and what comes back must be turned into Tether's rules:

* One shape for tokens (:class:`TokenSet`) whose repr never shows a token.
* Three failures callers can act on. :class:`InvalidGrant` means the grant is dead (revoked, expired, a
  rotated refresh token reused, a wrong PKCE verifier): never retry, the user must reconnect.
  :class:`ProviderUnavailable` (network error, timeout, 5xx, 429) is transient: retry with backoff.
  :class:`OAuthFailed` is any other error the provider answered.
* Messages name the endpoint and the OAuth error code only. The provider's ``error_description`` and body, and
  every token and secret, stay out of messages, exception chains and logs: provider text can echo what we sent.

Token requests do not follow redirects: a redirected POST would carry the client secret and the grant to a
place nobody configured. Loopback follows the egress rule (``loopback=None`` → env
``TETHER_ALLOW_LOOPBACK_PROVIDERS=1``).
"""

from __future__ import annotations

import secrets
import sys
import warnings
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx
import re2
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from engine.authoring.connections import OAuth2
from engine.errors import ProviderError, TetherError
from engine.kit.egress import DeadlineExceeded, egress_transport
from engine.kit.inputs import ascii_int


@contextmanager
def _httpx2_hidden() -> Iterator[None]:
    """Make ``import httpx2`` fail while authlib's httpx integration is imported.

    authlib builds its clients on ``httpx2`` whenever it is importable, and other dependencies (the ``mcp`` SDK)
    install it. Tether's egress guard is an ``httpx`` transport, so authlib must take its ``httpx`` fallback: a
    ``None`` entry in ``sys.modules`` makes the import raise ``ImportError`` for that one import only; the real
    module (if any code imported it already) is put back right after, so ``mcp`` keeps its ``httpx2``.
    """
    saved = sys.modules.get("httpx2", _ABSENT)
    sys.modules["httpx2"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if saved is _ABSENT:
            del sys.modules["httpx2"]
        else:
            sys.modules["httpx2"] = saved


_ABSENT = object()

with warnings.catch_warnings(), _httpx2_hidden():
    # authlib warns that plain httpx is deprecated in favour of httpx2; the egress guard is an httpx transport.
    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.integrations.base_client import OAuthError as _AuthlibOAuthError
    from authlib.integrations.httpx_client import AsyncOAuth2Client

if not issubclass(AsyncOAuth2Client, httpx.AsyncClient):  # pragma: no cover - depends on the environment
    # authlib switches to ``httpx2`` whenever it is importable; the egress transport would not fit it.
    raise ImportError(
        "authlib's httpx integration was imported on httpx2 before engine.custody.oauth; import the engine first"
    )

__all__ = [
    "InvalidGrant",
    "OAuthClient",
    "OAuthFailed",
    "ProviderUnavailable",
    "TokenSet",
    "authorization_url",
    "client_credentials",
    "exchange_code",
    "new_pkce",
    "refresh",
    "revoke",
]

TOKEN_TIMEOUT = 20.0
# Token and revocation answers are small; a bigger body is a misbehaving provider, not a token.
MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")

# RFC 6749 error codes are short ASCII words; anything else is not repeated back.
_ERROR_CODE = re2.compile(r"[A-Za-z0-9_.\-]{1,64}")  # RE2: a provider's (or a callback URL's) text (ASCII-only)


# -- errors ------------------------------------------------------------------------------------------------------


class OAuthFailed(TetherError):
    """The provider answered an OAuth error other than ``invalid_grant`` (or an answer that is not a token)."""

    code = "oauth_failed"
    status = 400
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, error: str | None = None) -> None:
        super().__init__(message)
        self.error = error


class InvalidGrant(OAuthFailed):
    """The grant is dead: the integration needs a reconnect. Never retried."""

    code = "invalid_grant"
    status = 400


class ProviderUnavailable(ProviderError):
    """The provider could not be reached or answered 5xx/429: transient, retry later."""

    code = "provider_unavailable"
    status = 502
    retryable: ClassVar[bool] = True


# -- values ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenSet:
    """What a token endpoint granted. ``expires_at`` is UTC; ``scopes`` are what the provider says it granted
    (or, when it says nothing, what was requested: RFC 6749 §5.1)."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    token_type: str
    expires_at: datetime | None
    scopes: tuple[str, ...]
    id_token: str | None = field(repr=False)

    def __repr__(self) -> str:
        return (
            f"TokenSet(access_token='***', refresh_token={'***' if self.refresh_token else None!r}, "
            f"token_type={self.token_type!r}, expires_at={self.expires_at!r}, scopes={self.scopes!r}, "
            f"id_token={'***' if self.id_token else None!r})"
        )


@dataclass(frozen=True)
class OAuthClient:
    """The registered client: its ID, secret (None for public clients) and token endpoint auth method."""

    client_id: str
    client_secret: str | None = field(repr=False)
    auth_method: str = "client_secret_basic"

    def __post_init__(self) -> None:
        if self.auth_method not in AUTH_METHODS:
            raise ValueError(f"auth_method must be one of {', '.join(AUTH_METHODS)}")
        if self.auth_method != "none" and not self.client_secret:
            raise ValueError(f"auth_method {self.auth_method} needs a client secret")

    def __repr__(self) -> str:
        secret = "'***'" if self.client_secret else "None"
        return f"OAuthClient(client_id={self.client_id!r}, client_secret={secret}, auth_method={self.auth_method!r})"


# -- authorization request ---------------------------------------------------------------------------------------


def new_pkce() -> tuple[str, str]:
    """A fresh PKCE pair ``(verifier, S256 challenge)``; the verifier is 86 unreserved characters (RFC 7636)."""
    verifier = secrets.token_urlsafe(64)
    return verifier, create_s256_code_challenge(verifier)


def authorization_url(
    auth: OAuth2,
    client: OAuthClient,
    *,
    redirect_uri: str,
    state: str,
    code_verifier: str | None,
    nonce: str | None,
    scopes: Sequence[str],
    extra_params: Sequence[tuple[str, str]] = (),
) -> str:
    """The URL to send the user's browser to. Nothing is requested here.

    The definition's ``extra_authorize_params`` come before ``extra_params``; neither may override the
    protocol parameters this function sets (state, PKCE, redirect), so a definition cannot weaken the flow.
    """
    params: dict[str, str] = {}
    for key, value in (*auth.extra_authorize_params, *extra_params):
        params[key] = value
    protected = {
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
        "nonce",
    }
    clash = protected.intersection(params)
    if clash:
        raise ValueError(f"extra authorize parameters may not set {', '.join(sorted(clash))}")
    if auth.pkce:
        if not code_verifier:
            raise ValueError("this OAuth2 flow uses PKCE: a code_verifier is required")
        params["code_challenge"] = create_s256_code_challenge(code_verifier)
        params["code_challenge_method"] = "S256"
    if nonce:
        params["nonce"] = nonce
    url: str = prepare_grant_uri(
        auth.authorize_url,
        client_id=client.client_id,
        response_type="code",
        redirect_uri=redirect_uri,
        scope=" ".join(scopes) or None,
        state=state,
        **params,
    )
    return url


# -- token endpoint operations -----------------------------------------------------------------------------------


async def exchange_code(
    auth: OAuth2,
    client: OAuthClient,
    *,
    code: str,
    redirect_uri: str,
    code_verifier: str | None,
    scopes: Sequence[str] = (),
    loopback: bool | None = None,
) -> TokenSet:
    """Trade an authorization code (and its PKCE verifier) for tokens.

    ``scopes`` are the ones the authorize request asked for, used only when the answer names none.
    """
    async with _oauth_client(client, loopback) as session, _MapErrors("token endpoint"):
        token = await session.fetch_token(
            auth.token_url,
            grant_type="authorization_code",
            code=code,
            redirect_uri=redirect_uri,
            code_verifier=code_verifier,
        )
    return _token_set(token, requested=scopes)


async def refresh(
    token_url: str,
    client: OAuthClient,
    refresh_token: str,
    *,
    scopes: Sequence[str] | None = None,
    loopback: bool | None = None,
) -> TokenSet:
    """Use a refresh token. When the provider rotates it, ``refresh_token`` is the new one, which the caller
    must persist before using the access token; when it does not, the old one is kept (RFC 6749 §6)."""
    async with _oauth_client(client, loopback) as session, _MapErrors("token endpoint"):
        token = await session.refresh_token(
            token_url,
            refresh_token=refresh_token,
            scope=" ".join(scopes) if scopes else None,
        )
    tokens = _token_set(token, requested=scopes or ())
    if tokens.refresh_token is None:
        tokens = replace(tokens, refresh_token=refresh_token)
    return tokens


async def client_credentials(
    token_url: str,
    client: OAuthClient,
    scopes: Sequence[str],
    *,
    loopback: bool | None = None,
) -> TokenSet:
    """App-only access (RFC 6749 §4.4)."""
    async with _oauth_client(client, loopback) as session, _MapErrors("token endpoint"):
        token = await session.fetch_token(
            token_url,
            grant_type="client_credentials",
            scope=" ".join(scopes) if scopes else None,
        )
    return _token_set(token, requested=scopes)


async def revoke(
    revoke_url: str,
    client: OAuthClient,
    token: str,
    *,
    token_type_hint: str | None = "refresh_token",
    loopback: bool | None = None,
) -> None:
    """Revoke a token (RFC 7009). A 2xx answer is success (the RFC says 200; some providers send 204).

    An answered error (``unsupported_token_type``, ``invalid_client`` …) is raised, not swallowed: a caller
    that disconnects must know the provider still honours the token.
    """
    async with _oauth_client(client, loopback) as session, _MapErrors("revocation endpoint"):
        response = await session.revoke_token(revoke_url, token=token, token_type_hint=token_type_hint)
    if 200 <= response.status_code < 300:
        return
    _raise_for_answer("revocation endpoint", response)


# -- internals ---------------------------------------------------------------------------------------------------


@asynccontextmanager
async def _oauth_client(client: OAuthClient, loopback: bool | None) -> AsyncIterator[AsyncOAuth2Client]:
    """An authlib client whose only transport is the egress guard; closed after one operation."""
    session = AsyncOAuth2Client(
        client_id=client.client_id,
        client_secret=client.client_secret,
        token_endpoint_auth_method=client.auth_method,
        revocation_endpoint_auth_method=client.auth_method,
        transport=egress_transport(allow_loopback=loopback, max_response_bytes=MAX_TOKEN_RESPONSE_BYTES),
        trust_env=False,
        follow_redirects=False,
        timeout=httpx.Timeout(TOKEN_TIMEOUT),
        headers={"Accept": "application/json", "Accept-Encoding": "gzip, deflate"},
    )
    try:
        yield session
    finally:
        await session.aclose()


class _MapErrors:
    """Turn whatever authlib/httpx raise into this module's errors, dropping the original chain.

    The chain is dropped (``from None``) because authlib's errors carry the provider's description and httpx's
    carry requests; neither belongs in a traceback that may be logged.
    """

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False
        if isinstance(exc, TetherError) and not isinstance(exc, DeadlineExceeded):
            return False  # the egress guard's own errors are already safe to show
        raise _translate(self.endpoint, exc) from None


def _translate(endpoint: str, exc: Exception) -> TetherError:
    if isinstance(exc, _AuthlibOAuthError):
        return _answered_error(endpoint, getattr(exc, "error", None))
    if isinstance(exc, httpx.HTTPStatusError):
        return _status_error(endpoint, exc.response)
    if isinstance(exc, DeadlineExceeded):
        # Mapped like every other timeout, so callers that retry ProviderUnavailable retry this too.
        return ProviderUnavailable(f"the {endpoint} did not answer within {exc.seconds:g} s")
    if isinstance(exc, httpx.TimeoutException):
        return ProviderUnavailable(f"the {endpoint} timed out")
    if isinstance(exc, httpx.TransportError):
        return ProviderUnavailable(f"the {endpoint} could not be reached")
    if isinstance(exc, httpx.HTTPError):
        return OAuthFailed(f"the {endpoint} answered with an unreadable response")
    if isinstance(exc, TimeoutError):  # a total deadline (asyncio/anyio) rather than an httpx read timeout
        return ProviderUnavailable(f"the {endpoint} timed out")
    if isinstance(exc, ConnectionError):
        return ProviderUnavailable(f"the {endpoint} could not be reached")
    if isinstance(exc, (ValueError, TypeError)):
        # authlib's parsing of a malformed answer (a non-JSON body, a non-numeric expires_in).
        return OAuthFailed(f"the {endpoint} answered with a malformed token response")
    return OAuthFailed(f"the {endpoint} request failed ({type(exc).__name__})")


def _safe_code(error: object) -> str | None:
    return error if isinstance(error, str) and error.isascii() and _ERROR_CODE.fullmatch(error) else None


def _answered_error(endpoint: str, error: object) -> TetherError:
    code = _safe_code(error)
    if code == "invalid_grant":
        return InvalidGrant(f"{endpoint} answered invalid_grant", error=code)
    if code == "temporarily_unavailable":
        return ProviderUnavailable(f"{endpoint} answered temporarily_unavailable")
    return OAuthFailed(f"{endpoint} answered {code or 'an unrecognised error'}", error=code)


def _retry_after(response: httpx.Response) -> float | None:
    seconds = ascii_int(response.headers.get("retry-after", "").strip())  # '²'.isdigit(), and float('²') raises
    return float(seconds) if seconds is not None else None


def _status_error(endpoint: str, response: httpx.Response) -> TetherError:
    status = response.status_code
    if status >= 500 or status == 429:
        return ProviderUnavailable(
            f"{endpoint} answered HTTP {status}", provider_status=status, retry_after=_retry_after(response)
        )
    return OAuthFailed(f"{endpoint} answered HTTP {status}")


def _raise_for_answer(endpoint: str, response: httpx.Response) -> None:
    """For endpoints whose success has no body (revocation): raise from the status and the error code."""
    if response.status_code >= 500 or response.status_code == 429:
        raise _status_error(endpoint, response)
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, Mapping) and "error" in body:
        raise _answered_error(endpoint, body["error"])
    raise _status_error(endpoint, response)


def _scopes(value: object, requested: Sequence[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, (list, tuple)) and all(isinstance(s, str) for s in value):
        return tuple(value)
    return tuple(requested)


def _seconds(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and (seconds := ascii_int(value.strip())) is not None:
        return float(seconds)
    return None


def _expires_at(token: Mapping[str, Any]) -> datetime | None:
    """From ``expires_in`` (relative, immune to clock skew) or else an absolute ``expires_at``."""
    expires_in = _seconds(token.get("expires_in"))
    if expires_in is not None:
        return datetime.now(UTC) + timedelta(seconds=max(expires_in, 0))
    expires_at = _seconds(token.get("expires_at"))
    if expires_at is not None:
        try:
            return datetime.fromtimestamp(expires_at, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _optional_str(token: Mapping[str, Any], key: str) -> str | None:
    value = token.get(key)
    return value if isinstance(value, str) and value else None


def _token_set(token: Mapping[str, Any], *, requested: Sequence[str]) -> TokenSet:
    access_token = token.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise OAuthFailed("token endpoint answered without an access token")
    return TokenSet(
        access_token=access_token,
        refresh_token=_optional_str(token, "refresh_token"),
        token_type=_optional_str(token, "token_type") or "Bearer",
        expires_at=_expires_at(token),
        scopes=_scopes(token.get("scope"), requested),
        id_token=_optional_str(token, "id_token"),
    )
