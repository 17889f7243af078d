"""Tether's OAuth client operations against two real authorization servers (panva oidc-provider and Canaille).

Why real servers: refresh rotation, reuse detection, RFC 7009 revocation and PKCE checks are exactly where
hand-written fakes agree with our own misreadings. Failure paths the real servers cannot produce on demand
(a 503, a refused connection, a chatty error body) use a tiny local http.server.
"""

from __future__ import annotations

import http.server
import json
import logging
import secrets
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from engine.authoring.connections import OAuth2
from engine.authoring.slots import OAuth2Token
from engine.custody.oauth import (
    InvalidGrant,
    OAuthClient,
    OAuthFailed,
    ProviderUnavailable,
    TokenSet,
    _translate,
    authorization_url,
    client_credentials,
    exchange_code,
    new_pkce,
    refresh,
    revoke,
)
from engine.errors import EgressRefused
from engine.kit.egress import LOOPBACK_ENV
from support.oracles import CanailleOracle, PanvaServer, callback_params, free_port, panva_client

pytestmark = pytest.mark.timeout(60)

# Loggers of the in-process Canaille server: it logs its own requests (tokens included) at DEBUG. Those are
# the oracle's logs, not Tether's, so the leak check leaves them out.
ORACLE_LOGGERS = ("canaille", "werkzeug", "faker")


class TestToken(OAuth2Token):
    """The slot the OAuth2 declarations name (oauth.py only reads their URLs and PKCE setting)."""

    __test__ = False


@pytest.fixture(autouse=True)
def _loopback_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The servers run on loopback; the egress guard allows that only through its test switch."""
    monkeypatch.setenv(LOOPBACK_ENV, "1")


@dataclass
class Oracle:
    """What the tests need from either server."""

    name: str
    auth: OAuth2
    client: OAuthClient
    redirect_uri: str
    scopes: tuple[str, ...]
    server: PanvaServer | CanailleOracle

    def consent(self, url: str) -> str:
        return self.server.consent(url)

    def introspect(self, token: str) -> dict[str, Any]:
        return self.server.introspect(token)


@pytest.fixture(scope="module")
def panva() -> Iterator[PanvaServer]:
    clients = [panva_client("engine"), panva_client("other", auth_method="client_secret_post")]
    with PanvaServer(clients=clients) as server:
        yield server


def _panva_oracle(server: PanvaServer) -> Oracle:
    auth = OAuth2(
        slot=TestToken, authorize_url=server.authorize_url, token_url=server.token_url, revoke_url=server.revoke_url
    )
    client = OAuthClient(server.client["client_id"], server.client["client_secret"])
    return Oracle("panva", auth, client, server.client["redirect_uris"][0], ("openid", "api:read"), server)


def _canaille_oracle(iam_server: Any) -> Oracle:
    server = CanailleOracle.create(iam_server)
    auth = OAuth2(
        slot=TestToken, authorize_url=server.authorize_url, token_url=server.token_url, revoke_url=server.revoke_url
    )
    client = OAuthClient(server.client_id, server.client_secret)
    return Oracle("canaille", auth, client, server.redirect_uri, ("openid", "profile"), server)


@pytest.fixture(params=["panva", "canaille"])
def oracle(request: pytest.FixtureRequest) -> Oracle:
    if request.param == "panva":
        return _panva_oracle(request.getfixturevalue("panva"))
    return _canaille_oracle(request.getfixturevalue("iam_server"))


async def _connect(oracle: Oracle, *, verifier_for_exchange: str | None = None) -> TokenSet:
    """The whole authorization-code + PKCE dance, with the user's part automated."""
    verifier, _ = new_pkce()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    url = authorization_url(
        oracle.auth, oracle.client, redirect_uri=oracle.redirect_uri, state=state, code_verifier=verifier,
        nonce=nonce, scopes=oracle.scopes,
    )
    params = callback_params(oracle.consent(url), state=state)
    return await exchange_code(
        oracle.auth, oracle.client, code=params["code"], redirect_uri=oracle.redirect_uri,
        code_verifier=verifier_for_exchange or verifier, scopes=oracle.scopes,
    )


# -- the lifecycle against both servers --------------------------------------------------------------------------


async def test_authorization_code_with_pkce_end_to_end(oracle: Oracle) -> None:
    tokens = await _connect(oracle)

    assert tokens.access_token and tokens.refresh_token and tokens.id_token
    assert tokens.token_type.lower() == "bearer"
    assert tokens.expires_at is not None and tokens.expires_at > datetime.now(UTC)
    assert "openid" in tokens.scopes
    assert oracle.introspect(tokens.access_token)["active"] is True


async def test_refresh_rotates_and_the_old_refresh_token_is_refused(oracle: Oracle) -> None:
    first = await _connect(oracle)
    assert first.refresh_token is not None

    second = await refresh(oracle.auth.token_url, oracle.client, first.refresh_token)

    assert second.refresh_token is not None and second.refresh_token != first.refresh_token
    assert second.access_token != first.access_token
    assert oracle.introspect(second.access_token)["active"] is True
    with pytest.raises(InvalidGrant):
        await refresh(oracle.auth.token_url, oracle.client, first.refresh_token)


async def test_revocation_takes_effect(oracle: Oracle) -> None:
    tokens = await _connect(oracle)
    assert tokens.refresh_token is not None and oracle.auth.revoke_url is not None

    await revoke(oracle.auth.revoke_url, oracle.client, tokens.refresh_token)

    assert oracle.introspect(tokens.refresh_token)["active"] is False
    with pytest.raises(InvalidGrant) as caught:
        await refresh(oracle.auth.token_url, oracle.client, tokens.refresh_token)
    assert caught.value.code == "invalid_grant" and caught.value.status == 400
    assert not caught.value.retryable


async def test_revoking_an_access_token_takes_effect(oracle: Oracle) -> None:
    tokens = await _connect(oracle)
    assert oracle.auth.revoke_url is not None

    await revoke(oracle.auth.revoke_url, oracle.client, tokens.access_token, token_type_hint="access_token")

    assert oracle.introspect(tokens.access_token)["active"] is False


async def test_a_wrong_pkce_verifier_is_invalid_grant(oracle: Oracle) -> None:
    wrong, _ = new_pkce()
    with pytest.raises(InvalidGrant):
        await _connect(oracle, verifier_for_exchange=wrong)


async def test_a_wrong_client_secret_is_an_oauth_failure_not_invalid_grant(oracle: Oracle) -> None:
    tokens = await _connect(oracle)
    assert tokens.refresh_token is not None
    impostor = OAuthClient(oracle.client.client_id, "not-the-secret")

    with pytest.raises(OAuthFailed) as caught:
        await refresh(oracle.auth.token_url, impostor, tokens.refresh_token)

    assert not isinstance(caught.value, InvalidGrant)
    assert caught.value.code == "oauth_failed" and caught.value.error == "invalid_client"


# -- panva only --------------------------------------------------------------------------------------------------


async def test_panva_reusing_a_rotated_refresh_token_revokes_the_whole_grant(panva: PanvaServer) -> None:
    oracle = _panva_oracle(panva)
    first = await _connect(oracle)
    assert first.refresh_token is not None
    second = await refresh(oracle.auth.token_url, oracle.client, first.refresh_token)
    assert second.refresh_token is not None
    assert panva.introspect(second.access_token)["active"] is True

    with pytest.raises(InvalidGrant):
        await refresh(oracle.auth.token_url, oracle.client, first.refresh_token)

    assert panva.introspect(second.access_token)["active"] is False
    with pytest.raises(InvalidGrant):
        await refresh(oracle.auth.token_url, oracle.client, second.refresh_token)


async def test_panva_client_credentials(panva: PanvaServer) -> None:
    client = OAuthClient(panva.client["client_id"], panva.client["client_secret"], "client_secret_basic")

    tokens = await client_credentials(panva.token_url, client, ["api:read"])

    assert tokens.refresh_token is None and tokens.id_token is None
    assert tokens.scopes == ("api:read",)
    assert tokens.expires_at is not None and tokens.expires_at > datetime.now(UTC)
    assert panva.introspect(tokens.access_token)["active"] is True


async def test_panva_client_secret_post(panva: PanvaServer) -> None:
    """The other common client authentication method (the client registered it); the secret goes in the body."""
    meta = panva.clients[1]
    client = OAuthClient(meta["client_id"], meta["client_secret"], "client_secret_post")

    tokens = await client_credentials(panva.token_url, client, ["api:write"])

    assert tokens.scopes == ("api:write",)
    with pytest.raises(OAuthFailed) as caught:
        await client_credentials(panva.token_url, OAuthClient(meta["client_id"], "nope", "client_secret_post"), [])
    assert caught.value.error == "invalid_client"


async def test_panva_refuses_to_revoke_another_clients_token_and_we_say_so(panva: PanvaServer) -> None:
    """panva answers invalid_request for a token of another client; a disconnect must not take that as done."""
    oracle = _panva_oracle(panva)
    tokens = await _connect(oracle)
    assert tokens.refresh_token is not None and oracle.auth.revoke_url is not None
    other = OAuthClient(panva.clients[1]["client_id"], panva.clients[1]["client_secret"], "client_secret_post")

    with pytest.raises(OAuthFailed) as caught:
        await revoke(oracle.auth.revoke_url, other, tokens.refresh_token)

    assert caught.value.error == "invalid_request"
    assert panva.introspect(tokens.access_token)["active"] is True


# -- failures a real server will not produce on demand -----------------------------------------------------------


class _Answer(http.server.BaseHTTPRequestHandler):
    """Answers every POST with the server's configured status, headers and body."""

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        status, headers, body = self.server.answer  # type: ignore[attr-defined]
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def canned() -> Iterator[http.server.HTTPServer]:
    """A local endpoint answering whatever ``server.answer = (status, headers, body)`` says."""
    server = http.server.HTTPServer(("127.0.0.1", 0), _Answer)
    server.answer = (200, {}, b"")  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _url(server: http.server.HTTPServer, path: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


CLIENT = OAuthClient("tether-client", "s3cret-client-value-123")
LEAKY_BODY = json.dumps({
    "error": "invalid_grant",
    "error_description": "refresh token rt-LEAK-4242 was revoked; secret s3cret-client-value-123",
}).encode()


async def test_a_5xx_token_endpoint_is_provider_unavailable(canned: http.server.HTTPServer) -> None:
    canned.answer = (503, {"retry-after": "7", "content-type": "text/html"}, b"<h1>down rt-LEAK-4242</h1>")  # type: ignore[attr-defined]

    with pytest.raises(ProviderUnavailable) as caught:
        await refresh(_url(canned, "/token"), CLIENT, "rt-LEAK-4242")

    error = caught.value
    assert error.code == "provider_unavailable" and error.status == 502 and error.retryable
    assert error.provider_status == 503 and error.retry_after == 7
    assert "rt-LEAK-4242" not in str(error)


async def test_a_refused_connection_is_provider_unavailable() -> None:
    with pytest.raises(ProviderUnavailable) as caught:
        await client_credentials(f"http://127.0.0.1:{free_port()}/token", CLIENT, ["a"])
    assert caught.value.retryable


async def test_a_token_endpoint_that_hangs_up_is_provider_unavailable() -> None:
    """A server that reads the request and closes the socket without a byte (a crashed or overloaded provider)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def hang_up() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.close()

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    try:
        with pytest.raises(ProviderUnavailable) as caught:
            await client_credentials(f"http://127.0.0.1:{listener.getsockname()[1]}/token", CLIENT, ["a"])
    finally:
        thread.join(timeout=5)
        listener.close()
    assert caught.value.retryable and "s3cret" not in str(caught.value)


@pytest.mark.parametrize("raised", [TimeoutError("deadline"), ConnectionResetError("reset"), httpx.ReadTimeout("slow")])
def test_deadlines_and_socket_errors_are_provider_unavailable(raised: Exception) -> None:
    """What a total deadline or the OS raises inside a token request is transient trouble, not ``oauth_failed``."""
    translated = _translate("token endpoint", raised)
    assert isinstance(translated, ProviderUnavailable) and translated.status == 502


async def test_the_egress_guard_still_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LOOPBACK_ENV)
    with pytest.raises(EgressRefused):
        await client_credentials(f"http://127.0.0.1:{free_port()}/token", CLIENT, ["a"])


async def test_invalid_grant_message_carries_only_the_error_code(canned: http.server.HTTPServer) -> None:
    canned.answer = (400, {"content-type": "application/json"}, LEAKY_BODY)  # type: ignore[attr-defined]

    with pytest.raises(InvalidGrant) as caught:
        await refresh(_url(canned, "/token"), CLIENT, "rt-LEAK-4242")

    assert str(caught.value) == "token endpoint answered invalid_grant"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


async def test_revocation_error_unsupported_token_type_is_raised(canned: http.server.HTTPServer) -> None:
    body = json.dumps({"error": "unsupported_token_type", "error_description": "no rt-LEAK-4242"}).encode()
    canned.answer = (400, {"content-type": "application/json"}, body)  # type: ignore[attr-defined]

    with pytest.raises(OAuthFailed) as caught:
        await revoke(_url(canned, "/revoke"), CLIENT, "rt-LEAK-4242")

    assert caught.value.error == "unsupported_token_type"
    assert str(caught.value) == "revocation endpoint answered unsupported_token_type"


async def test_a_success_answer_without_an_access_token_is_an_oauth_failure(
    canned: http.server.HTTPServer,
) -> None:
    canned.answer = (200, {"content-type": "application/json"}, b'{"token_type": "Bearer"}')  # type: ignore[attr-defined]
    with pytest.raises(OAuthFailed):
        await client_credentials(_url(canned, "/token"), CLIENT, ["a"])


async def test_a_redirecting_token_endpoint_is_not_followed(canned: http.server.HTTPServer) -> None:
    canned.answer = (307, {"location": "http://127.0.0.1:1/steal"}, b"")  # type: ignore[attr-defined]
    with pytest.raises(OAuthFailed):
        await client_credentials(_url(canned, "/token"), CLIENT, ["a"])


# -- nothing secret in messages, reprs or logs -------------------------------------------------------------------


def test_authorization_url_parameters() -> None:
    auth = OAuth2(slot=TestToken, authorize_url="https://idp.example/authorize", token_url="https://idp.example/token",
                  extra_authorize_params=(("access_type", "offline"),))
    verifier, challenge = new_pkce()
    url = authorization_url(auth, CLIENT, redirect_uri="https://app.example/cb", state="st", code_verifier=verifier,
                            nonce="nn", scopes=["a", "b"], extra_params=[("prompt", "consent")])
    params = callback_params(url, state="st")
    assert params == {
        "response_type": "code", "client_id": "tether-client", "redirect_uri": "https://app.example/cb",
        "scope": "a b", "state": "st", "access_type": "offline", "prompt": "consent",
        "code_challenge": challenge, "code_challenge_method": "S256", "nonce": "nn",
    }
    assert 43 <= len(verifier) <= 128
    with pytest.raises(ValueError):
        authorization_url(auth, CLIENT, redirect_uri="https://app.example/cb", state="st", code_verifier=verifier,
                          nonce=None, scopes=[], extra_params=[("state", "forged")])


def test_reprs_hide_tokens_and_secrets() -> None:
    tokens = TokenSet("at-LEAK", "rt-LEAK", "Bearer", None, ("a",), "id-LEAK")
    assert "LEAK" not in repr(tokens) and "LEAK" not in str(tokens)
    assert "s3cret" not in repr(CLIENT) and "s3cret" not in str(CLIENT)


async def test_no_token_or_secret_reaches_messages_or_logs(
    panva: PanvaServer, canned: http.server.HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    oracle = _panva_oracle(panva)
    messages: list[str] = []

    first = await _connect(oracle)
    assert first.refresh_token is not None
    second = await refresh(oracle.auth.token_url, oracle.client, first.refresh_token)
    for attempt in (
        refresh(oracle.auth.token_url, oracle.client, first.refresh_token),  # reuse: invalid_grant
        refresh(oracle.auth.token_url, OAuthClient(oracle.client.client_id, "wrong-secret-LEAK"), "rt-x"),
        refresh(_url(canned, "/token"), CLIENT, "rt-LEAK-4242"),
    ):
        canned.answer = (400, {"content-type": "application/json"}, LEAKY_BODY)  # type: ignore[attr-defined]
        with pytest.raises(OAuthFailed) as caught:
            await attempt
        messages += [str(caught.value), repr(caught.value), json.dumps(caught.value.to_dict())]

    secrets_seen = {
        first.access_token, first.refresh_token, first.id_token, second.access_token, second.refresh_token,
        second.id_token, oracle.client.client_secret, CLIENT.client_secret, "wrong-secret-LEAK", "rt-LEAK-4242",
    }
    ours = [r for r in caplog.records if r.name.split(".")[0] not in ORACLE_LOGGERS]
    assert ours, "httpx/httpcore should have logged something at DEBUG"
    logged = "\n".join(f"{r.getMessage()} {r.args!r}" for r in ours)
    for value in secrets_seen:
        assert value
        assert value not in logged
        for message in messages:
            assert value not in message
