"""The sandbox's OAuth 2.0 authorization server (RFC 6749, PKCE RFC 7636 with S256 required, RFC 7009).

- ``GET /oauth/authorize`` checks the client and the redirect URI (which must be under Tether's own
  ``public_url``: the sandbox serves only this Tether) and shows the consent page; a bad client or redirect URI is a
  400 page (never a redirect to an unchecked URI), other errors go back to the redirect URI (§4.1.2.1).
- ``POST /oauth/authorize`` is the consent form: Approve sends the browser back with ``code`` and ``state``, Deny
  with ``error=access_denied``.
- ``POST /oauth/token``: ``authorization_code`` and ``refresh_token`` grants (``engine.sandbox.grants``), client
  authentication by HTTP Basic or form fields; errors per §5.2.
- ``POST /oauth/revoke``: RFC 7009, 200 for any token once the client is authenticated.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode

import anyio.to_thread
import re2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from engine.sandbox.answers import NO_STORE, Answer, ProviderRoute, bad_request
from engine.sandbox.database import sandbox_db
from engine.sandbox.grants import READ_SCOPES, SCOPES, GrantError, exchange_code, new_code, refresh, revoke_token
from engine.sandbox.seed import ACCOUNTS, BY_ID
from engine.settings import Settings

CLIENT_ID = "tether-sandbox"
CLIENT_SECRET = "sandbox-secret"  # fixed and published: the sandbox serves test data only
_CHALLENGE = re2.compile(r"[A-Za-z0-9_-]{43}")  # base64url of a SHA-256 digest, unpadded
_MAX_PARAM = 2000
#: Headers of the consent page: never framed (clickjacking), nothing loaded from elsewhere.
PAGE_HEADERS = {
    **NO_STORE,
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(prefix="/oauth", route_class=ProviderRoute, include_in_schema=False)
templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(default=True)
)


@dataclass(frozen=True)
class AuthorizeRequest:
    redirect_uri: str
    state: str
    scopes: list[str]
    code_challenge: str


class PageError(Exception):
    """A request that cannot be sent back to its redirect URI: answered with a 400 page."""


def _settings(request: Request) -> Settings:
    return request.app.state.runtime.settings


def _redirect_back(redirect_uri: str, params: dict[str, str]) -> RedirectResponse:
    separator = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(redirect_uri + separator + urlencode(params), status_code=302, headers=NO_STORE)


def _check_client_and_redirect(settings: Settings, params: dict[str, str]) -> str:
    if params.get("client_id") != CLIENT_ID:
        raise PageError("unknown client_id: the sandbox serves the client tether-sandbox only")
    redirect_uri = params.get("redirect_uri", "")
    own = settings.public_url.rstrip("/") + "/"
    if not redirect_uri.startswith(own) or len(redirect_uri) > _MAX_PARAM or "#" in redirect_uri:
        raise PageError("redirect_uri must be this Tether's own callback URL")
    return redirect_uri


def _authorize_request(params: dict[str, str], redirect_uri: str) -> AuthorizeRequest | RedirectResponse:
    state = params.get("state", "")

    def error(code: str, description: str) -> RedirectResponse:
        found = {"error": code, "error_description": description}
        return _redirect_back(redirect_uri, {**found, "state": state} if state else found)

    if params.get("response_type") != "code":
        return error("unsupported_response_type", "response_type must be code")
    if len(state) > _MAX_PARAM:
        return error("invalid_request", "state is too long")
    if params.get("code_challenge_method") != "S256" or not _CHALLENGE.fullmatch(params.get("code_challenge", "")):
        return error("invalid_request", "PKCE is required: code_challenge with code_challenge_method=S256")
    requested = params.get("scope", "").split()
    if any(scope not in SCOPES for scope in requested):
        return error("invalid_scope", f"scopes are among: {' '.join(SCOPES)}")
    scopes = [s for s in SCOPES if s in requested] or list(READ_SCOPES)
    return AuthorizeRequest(redirect_uri, state, scopes, params["code_challenge"])


def _page(template: str, status: int = 200, **values: object) -> HTMLResponse:
    return HTMLResponse(templates.get_template(template).render(**values), status_code=status, headers=PAGE_HEADERS)


@router.get("/authorize")
async def authorize(request: Request) -> Response:
    params = dict(request.query_params)
    try:
        redirect_uri = _check_client_and_redirect(_settings(request), params)
    except PageError as exc:
        return _page("oauth_error.html", 400, message=str(exc))
    checked = _authorize_request(params, redirect_uri)
    if isinstance(checked, RedirectResponse):
        return checked
    await anyio.to_thread.run_sync(sandbox_db, request.app.state.runtime.db)  # first use: tables and seed
    hidden = {
        k: params.get(k, "")
        for k in (
            "response_type",
            "client_id",
            "redirect_uri",
            "state",
            "scope",
            "code_challenge",
            "code_challenge_method",
        )
    }
    return _page("consent.html", accounts=ACCOUNTS, scopes=checked.scopes, hidden=hidden)


@router.post("/authorize")
async def consent(request: Request) -> Response:
    params = await _form(request)
    try:
        redirect_uri = _check_client_and_redirect(_settings(request), params)
    except PageError as exc:
        return _page("oauth_error.html", 400, message=str(exc))
    checked = _authorize_request(params, redirect_uri)
    if isinstance(checked, RedirectResponse):
        return checked
    state = {"state": checked.state} if checked.state else {}
    if params.get("decision") != "approve":
        return _redirect_back(redirect_uri, {"error": "access_denied", **state})
    account = params.get("account", "")
    if account not in BY_ID:
        return _page("oauth_error.html", 400, message="pick one of the sandbox's accounts")
    code = await anyio.to_thread.run_sync(
        lambda: new_code(
            sandbox_db(request.app.state.runtime.db),
            account_id=account,
            redirect_uri=redirect_uri,
            scopes=checked.scopes,
            challenge=checked.code_challenge,
        )
    )
    return _redirect_back(redirect_uri, {"code": code, **state})


@router.post("/token")
async def token(request: Request) -> Response:
    params = await _form(request)
    _authenticate_client(request, params)
    runtime = request.app.state.runtime
    seconds = runtime.settings.sandbox_token_seconds
    grant_type = params.get("grant_type")
    try:
        if grant_type == "authorization_code":
            code, verifier = _required(params, "code"), _required(params, "code_verifier")
            redirect_uri = _required(params, "redirect_uri")
            issued = await anyio.to_thread.run_sync(
                lambda: exchange_code(
                    sandbox_db(runtime.db), code, redirect_uri=redirect_uri, verifier=verifier, token_seconds=seconds
                )
            )
        elif grant_type == "refresh_token":
            presented = _required(params, "refresh_token")
            issued = await anyio.to_thread.run_sync(
                lambda: refresh(sandbox_db(runtime.db), presented, token_seconds=seconds)
            )
        else:
            raise Answer(400, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token")
    except GrantError as exc:
        raise Answer(400, exc.error, exc.description) from None
    body = {
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "refresh_token": issued.refresh_token,
        "scope": " ".join(issued.scopes),
    }
    return JSONResponse(body, headers=NO_STORE)


@router.post("/revoke")
async def revoke(request: Request) -> Response:
    params = await _form(request)
    _authenticate_client(request, params)
    presented = _required(params, "token")
    await anyio.to_thread.run_sync(revoke_token, sandbox_db(request.app.state.runtime.db), presented)
    return Response(status_code=200, headers=NO_STORE)


def _required(params: dict[str, str], name: str) -> str:
    value = params.get(name, "")
    if not value:
        raise bad_request(f"missing parameter: {name}")
    return value


async def _form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body; a parameter sent twice is refused (RFC 6749 §3.1)."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise bad_request("the body must be application/x-www-form-urlencoded")
    try:
        pairs = parse_qsl((await request.body()).decode(), keep_blank_values=True, max_num_fields=50)
    except (UnicodeDecodeError, ValueError):
        raise bad_request("the body is not a valid form") from None
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise bad_request(f"parameter sent twice: {name}")
        if len(value) > _MAX_PARAM:
            raise bad_request(f"parameter too long: {name}")
        params[name] = value
    return params


def _authenticate_client(request: Request, params: dict[str, str]) -> None:
    """client_secret_basic or client_secret_post (one of them); 401 ``invalid_client`` otherwise."""
    authorization = request.headers.get("authorization", "")
    posted = "client_secret" in params
    if authorization[:6].lower() == "basic ":
        if posted:
            raise bad_request("send the client's credentials once: HTTP Basic or the form, not both")
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise _invalid_client() from None
        client_id, _, secret = decoded.partition(":")
        client_id, secret = unquote(client_id), unquote(secret)
    else:
        client_id, secret = params.get("client_id", ""), params.get("client_secret", "")
    if not (
        hmac.compare_digest(client_id.encode(), CLIENT_ID.encode())
        and hmac.compare_digest(secret.encode(), CLIENT_SECRET.encode())
    ):
        raise _invalid_client()


def _invalid_client() -> Answer:
    return Answer(401, "invalid_client", "client authentication failed", {"WWW-Authenticate": 'Basic realm="sandbox"'})
