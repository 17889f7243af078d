"""The sandbox's authorization server, driven by real OAuth clients over a real server: custody's (authlib's
``AsyncOAuth2Client`` through the egress guard, no loopback flag: the own-origin rule admits it) and authlib's
own authorization URL with PKCE S256. Codes are single use, refresh tokens rotate, reuse revokes the grant, RFC
7009 revocation takes effect, and the controls expire tokens and revoke grants."""

from __future__ import annotations

import base64
import sqlite3
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy.engine import make_url

from engine.custody import oauth as custody
from engine.custody.oauth import AsyncOAuth2Client  # authlib's, imported on httpx (not httpx2) by the engine
from engine.sandbox.database import side_url
from engine.sandbox.oauth import CLIENT_ID, CLIENT_SECRET
from sandbox.conftest import LiveSandbox

BASIC = custody.OAuthClient(CLIENT_ID, CLIENT_SECRET, "client_secret_basic")
POST = custody.OAuthClient(CLIENT_ID, CLIENT_SECRET, "client_secret_post")


@dataclass
class Approved:
    code: str
    verifier: str
    redirect_uri: str


@dataclass(frozen=True)
class Endpoints:
    """The URLs of an ``OAuth2`` connection that custody's token calls read."""

    authorize_url: str
    token_url: str
    revoke_url: str


def endpoints(live: LiveSandbox) -> Endpoints:
    return Endpoints(f"{live.sandbox}/oauth/authorize", f"{live.sandbox}/oauth/token", f"{live.sandbox}/oauth/revoke")


def consent(
    live: LiveSandbox, *, account: str = "acme", scope: str | None = None, decision: str = "approve"
) -> httpx.Response:
    """Open the consent page from authlib's authorization URL, then submit its form as a browser would."""
    redirect_uri = f"{live.base}/v1/oauth/callback"
    client = AsyncOAuth2Client(
        CLIENT_ID, CLIENT_SECRET, redirect_uri=redirect_uri, scope=scope, code_challenge_method="S256"
    )
    verifier = custody.new_pkce()[0]
    url, state = client.create_authorization_url(endpoints(live).authorize_url, code_verifier=verifier)
    page = live.http.get(url)
    assert page.status_code == 200 and "Acme Corp" in page.text and ">Approve access<" in page.text
    assert page.headers["x-frame-options"] == "DENY"
    form = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    answer = live.http.post(url.split("?")[0], data={**form, "account": account, "decision": decision})
    answer.verifier = verifier  # type: ignore[attr-defined]
    answer.state = state  # type: ignore[attr-defined]
    return answer


def approve(live: LiveSandbox, **kwargs: str) -> Approved:
    answer = consent(live, **kwargs)
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    query = parse_qs(urlsplit(location).query)
    assert location.startswith(f"{live.base}/v1/oauth/callback?")
    assert query["state"] == [answer.state]  # type: ignore[attr-defined]
    return Approved(query["code"][0], answer.verifier, f"{live.base}/v1/oauth/callback")  # type: ignore[attr-defined]


async def exchange(live: LiveSandbox, approved: Approved, client: custody.OAuthClient = BASIC) -> custody.TokenSet:
    return await custody.exchange_code(
        endpoints(live),  # type: ignore[arg-type]
        client,
        code=approved.code,
        redirect_uri=approved.redirect_uri,
        code_verifier=approved.verifier,
        loopback=False,
    )


def me(live: LiveSandbox, token: str) -> httpx.Response:
    return live.http.get(f"{live.sandbox}/api/v1/me", headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize("client", [BASIC, POST], ids=["basic", "post"])
async def test_the_code_flow_with_pkce(live: LiveSandbox, client: custody.OAuthClient) -> None:
    tokens = await exchange(live, approve(live, account="globex"), client)
    assert tokens.refresh_token and tokens.token_type.lower() == "bearer"
    assert set(tokens.scopes) == {"directory:read", "assets:read", "events:read"}
    assert me(live, tokens.access_token).json()["account"] == "globex"


async def test_a_code_is_single_use_and_its_reuse_revokes_the_grant(live: LiveSandbox) -> None:
    approved = approve(live)
    tokens = await exchange(live, approved)
    assert me(live, tokens.access_token).status_code == 200
    with pytest.raises(custody.InvalidGrant):
        await exchange(live, approved)
    revoked = me(live, tokens.access_token)
    assert revoked.status_code == 401 and 'error="invalid_token"' in revoked.headers["www-authenticate"]


async def test_pkce_is_verified(live: LiveSandbox) -> None:
    approved = approve(live)
    approved.verifier = custody.new_pkce()[0]
    with pytest.raises(custody.InvalidGrant):
        await exchange(live, approved)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": ""}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "admin"}, "invalid_scope"),
    ],
)
def test_bad_authorize_requests_go_back_with_an_error(live: LiveSandbox, change: dict[str, str], error: str) -> None:
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": f"{live.base}/v1/oauth/callback",
        "state": "s1",
        "code_challenge": "a" * 43,
        "code_challenge_method": "S256",
        **change,
    }
    answer = live.http.get(f"{live.sandbox}/oauth/authorize", params=params)
    assert answer.status_code == 302
    assert parse_qs(urlsplit(answer.headers["location"]).query) | {"error_description": [""]} == {
        "error": [error],
        "state": ["s1"],
        "error_description": [""],
    }


@pytest.mark.parametrize(
    "change",
    [
        {"client_id": "someone"},
        {"redirect_uri": "https://evil.example/cb"},
        {"redirect_uri": ""},
        {"redirect_uri": "http://127.0.0.1:1/v1/oauth/callback"},
    ],
)
def test_a_bad_client_or_redirect_uri_is_a_400_page(live: LiveSandbox, change: dict[str, str]) -> None:
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": f"{live.base}/v1/oauth/callback",
        **change,
    }
    for answer in (
        live.http.get(f"{live.sandbox}/oauth/authorize", params=params),
        live.http.post(f"{live.sandbox}/oauth/authorize", data={**params, "decision": "approve", "account": "acme"}),
    ):
        assert answer.status_code == 400 and answer.headers["content-type"].startswith("text/html")
        assert "location" not in answer.headers


def test_deny_goes_back_with_access_denied(live: LiveSandbox) -> None:
    answer = consent(live, decision="deny")
    assert answer.status_code == 302
    assert parse_qs(urlsplit(answer.headers["location"]).query) == {"error": ["access_denied"], "state": [answer.state]}  # type: ignore[attr-defined]


async def test_refresh_rotates_and_reuse_revokes_the_grant(live: LiveSandbox) -> None:
    first = await exchange(live, approve(live))
    assert first.refresh_token
    second = await custody.refresh(endpoints(live).token_url, BASIC, first.refresh_token, loopback=False)
    assert second.refresh_token and second.refresh_token != first.refresh_token
    assert second.access_token != first.access_token
    assert me(live, second.access_token).status_code == 200
    third = await custody.refresh(endpoints(live).token_url, BASIC, second.refresh_token, loopback=False)
    with pytest.raises(custody.InvalidGrant):
        await custody.refresh(endpoints(live).token_url, BASIC, first.refresh_token, loopback=False)
    # The replay killed the whole grant: the newest tokens too.
    assert me(live, third.access_token).status_code == 401
    with pytest.raises(custody.InvalidGrant):
        assert third.refresh_token
        await custody.refresh(endpoints(live).token_url, BASIC, third.refresh_token, loopback=False)


@pytest.mark.parametrize("which", ["refresh_token", "access_token"])
async def test_revocation_takes_effect(live: LiveSandbox, which: str) -> None:
    tokens = await exchange(live, approve(live))
    assert tokens.refresh_token
    revoke_url = endpoints(live).revoke_url
    assert revoke_url
    await custody.revoke(revoke_url, BASIC, getattr(tokens, which), token_type_hint=which, loopback=False)
    assert me(live, tokens.access_token).status_code == 401
    with pytest.raises(custody.InvalidGrant):
        await custody.refresh(endpoints(live).token_url, BASIC, tokens.refresh_token, loopback=False)
    # RFC 7009 §2.2: an unknown (or already revoked) token is no error.
    await custody.revoke(revoke_url, BASIC, "sbx_rt_unknown", loopback=False)


async def test_the_controls_expire_tokens_and_revoke_grants(live: LiveSandbox) -> None:
    tokens = await exchange(live, approve(live, account="initech"))
    assert tokens.refresh_token
    assert live.control("initech/expire-tokens").json()["expired_tokens"] >= 1
    assert me(live, tokens.access_token).status_code == 401
    renewed = await custody.refresh(endpoints(live).token_url, BASIC, tokens.refresh_token, loopback=False)
    assert me(live, renewed.access_token).status_code == 200
    assert live.control("initech/revoke-grants").json()["revoked_grants"] >= 1
    assert me(live, renewed.access_token).status_code == 401
    assert renewed.refresh_token
    with pytest.raises(custody.InvalidGrant):
        await custody.refresh(endpoints(live).token_url, BASIC, renewed.refresh_token, loopback=False)


async def test_scopes_limit_what_a_token_reads(live: LiveSandbox) -> None:
    tokens = await exchange(live, approve(live, scope="directory:read"))
    assert tokens.scopes == ("directory:read",)
    headers = {"Authorization": f"Bearer {tokens.access_token}"}
    assert live.http.get(f"{live.sandbox}/api/v1/users", headers=headers).status_code == 200
    refused = live.http.get(f"{live.sandbox}/api/v1/assets", headers=headers)
    assert refused.status_code == 403 and refused.json()["error"] == "insufficient_scope"


def test_the_access_token_lifetime_is_the_setting(live: LiveSandbox) -> None:
    approved = approve(live)
    answer = live.http.post(
        f"{live.sandbox}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": approved.code,
            "redirect_uri": approved.redirect_uri,
            "code_verifier": approved.verifier,
        },
        auth=(CLIENT_ID, CLIENT_SECRET),
    )
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    assert answer.json()["expires_in"] == live.runtime.settings.sandbox_token_seconds == 300


@pytest.mark.parametrize(
    ("data", "auth", "status", "error"),
    [
        ({"grant_type": "refresh_token", "refresh_token": "x"}, ("tether-sandbox", "wrong"), 401, "invalid_client"),
        ({"grant_type": "refresh_token", "refresh_token": "x"}, None, 401, "invalid_client"),
        ({"grant_type": "password"}, (CLIENT_ID, CLIENT_SECRET), 400, "unsupported_grant_type"),
        ({"grant_type": "authorization_code"}, (CLIENT_ID, CLIENT_SECRET), 400, "invalid_request"),
        (
            {"grant_type": "refresh_token", "refresh_token": "sbx_rt_nope"},
            (CLIENT_ID, CLIENT_SECRET),
            400,
            "invalid_grant",
        ),
        (
            {"grant_type": "authorization_code", "code": "nope", "redirect_uri": "x", "code_verifier": "v"},
            (CLIENT_ID, CLIENT_SECRET),
            400,
            "invalid_grant",
        ),
    ],
)
def test_token_endpoint_errors_follow_rfc_6749(
    live: LiveSandbox, data: dict[str, str], auth: tuple[str, str] | None, status: int, error: str
) -> None:
    answer = live.http.post(f"{live.sandbox}/oauth/token", data=data, auth=auth)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == error
    if status == 401:
        assert answer.headers["www-authenticate"].startswith("Basic")


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b'{"grant_type": "refresh_token"}', {"content-type": "application/json"}),
        (b"grant_type=a&grant_type=b", {"content-type": "application/x-www-form-urlencoded"}),
        (b"\xff\xfe", {"content-type": "application/x-www-form-urlencoded"}),
        (
            b"token=x",
            {
                "content-type": "application/x-www-form-urlencoded",
                "authorization": "Basic " + base64.b64encode(b"\xff:\xfe").decode(),
            },
        ),
        (b"token=x", {"content-type": "application/x-www-form-urlencoded", "authorization": "Basic !!!"}),
    ],
)
def test_malformed_token_and_revoke_requests_are_4xx(
    live: LiveSandbox, content: bytes, headers: dict[str, str]
) -> None:
    for path in ("token", "revoke"):
        answer = live.http.post(f"{live.sandbox}/oauth/{path}", content=content, headers=headers)
        assert 400 <= answer.status_code < 500, answer.text
        assert isinstance(answer.json()["error"], str)


async def test_a_refresh_answers_while_tethers_sqlite_file_is_write_locked(live: LiveSandbox) -> None:
    """The Keystore refreshes under SQLite's write lock (``BEGIN IMMEDIATE``); the sandbox's token endpoint, which
    must write to rotate, keeps its tables in a file of its own, so it answers instead of waiting for that lock."""
    tokens = await exchange(live, approve(live))
    assert tokens.refresh_token
    main = make_url(live.runtime.db.url).database
    assert main and side_url(live.runtime.db.url) != live.runtime.db.url
    lock = sqlite3.connect(main, timeout=1, isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")
        renewed = await custody.refresh(endpoints(live).token_url, BASIC, tokens.refresh_token, loopback=False)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert me(live, renewed.access_token).status_code == 200
