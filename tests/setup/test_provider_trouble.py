"""Provider trouble is never ``internal_error`` (issue 16, item 4): a provider that closes the connection or never
answers, while a credential is submitted or a flow completes, is 502 ``provider_unavailable`` with a
``status_reason`` on the integration, and nothing is saved; a disconnect whose provider-specific revocation cannot
reach the provider is 502 ``revocation_failed`` and deletes nothing. Plus: a typed-in key of another account is
refused.

The providers are real sockets on 127.0.0.1 (:class:`Provider`), each path answering, closing, or staying silent.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

import engine.custody.oauth
from engine.api import create_app
from engine.api.principal import create_api_key
from engine.custody.crypto import generate_master_key
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database

RETURN_URL = "https://app.example/settings"
#: Seconds the test clients wait for an answer; the silent provider never sends one.
CLIENT_TIMEOUT = "0.5"

Behaviour = Literal["answer", "close", "silent"]


class Provider:
    """A tiny HTTP/1.1 server: ``GET /ping`` answers 200, ``GET /me`` answers ``{"sub": <bearer token>}``, and any
    path set to ``close`` or ``silent`` in ``behaviour`` drops the connection after reading the request, or keeps
    it open without a byte."""

    def __init__(self) -> None:
        self.behaviour: dict[str, Behaviour] = {}
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._open: list[socket.socket] = []
        self._stopped = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = conn.recv(65536)
            if not chunk:
                conn.close()
                return
            request += chunk
        head = request.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        path = urlsplit(head[0].split(" ")[1]).path
        behaviour = self.behaviour.get(path, "answer")
        if behaviour == "close":
            conn.close()
            return
        if behaviour == "silent":
            self._open.append(conn)  # held open until the server stops
            return
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
        token = headers.get("authorization", "").removeprefix("Bearer ")
        body = json.dumps({"sub": token.removeprefix("key-")} if path == "/me" else {"ok": True}).encode()
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        conn.close()

    def stop(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):  # already shut: closed by a previous stop
            # Wakes the blocked ``accept`` (a bare close does not, on Linux): the serving thread then ends.
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        for conn in self._open:
            conn.close()


@pytest.fixture
def provider() -> Iterator[Provider]:
    server = Provider()
    yield server
    server.stop()


@pytest.fixture
async def api(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, provider: Provider
) -> AsyncIterator[httpx.AsyncClient]:
    env = {
        "TETHER_SECRET_MASTER_KEY": generate_master_key(),
        "TETHER_ACCOUNTS_CLIENT_ID": "tether",
        "TETHER_SECRET_ACCOUNTS_CLIENT_SECRET": "tether-secret",
        "TETHER_TEST_ACCOUNTS_AUTHORIZE_URL": f"{provider.url}/authorize",
        "TETHER_TEST_ACCOUNTS_TOKEN_URL": f"{provider.url}/token",
        "TETHER_TEST_ACCOUNTS_REVOKE_URL": f"{provider.url}/revoke",
        "TETHER_TEST_ACCOUNTS_USERINFO_URL": f"{provider.url}/me",
        "TETHER_TEST_ACCOUNTS_API_URL": provider.url,
        "TETHER_TEST_ACCOUNTS_TIMEOUT": CLIENT_TIMEOUT,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    # The token endpoint's read timeout, shortened so the silent provider fails the exchange quickly.
    monkeypatch.setattr(engine.custody.oauth, "TOKEN_TIMEOUT", float(CLIENT_TIMEOUT))
    import support.account_definition

    importlib.reload(support.account_definition)
    settings = Settings(
        database_url=database.url,
        allow_loopback_providers=True,
        definition_modules="support.account_definition",
        state_dir=str(tmp_path),
        public_url="http://tether.test",
        allowed_return_origins_list="https://app.example",
    )
    runtime = Runtime.start(settings)
    key, _ = create_api_key(runtime.db, tenant="t1", role="server")
    transport = httpx.ASGITransport(app=create_app(runtime), raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://tether.test", headers={"Authorization": f"Bearer {key}"}
    ) as client:
        yield client
    runtime.close()


async def create(api: httpx.AsyncClient) -> str:
    created = await api.post("/v1/integrations", json={"definition_id": "accounts", "owner_id": "alice"})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def submit(api: httpx.AsyncClient, iid: str, token: str) -> httpx.Response:
    return await api.post(f"/v1/integrations/{iid}/credentials/AccountKey", json={"token": token})


def assert_unavailable(response: httpx.Response) -> None:
    assert (response.status_code, response.json()["error"]["code"]) == (502, "provider_unavailable"), response.text


@pytest.mark.parametrize("behaviour", ["close", "silent"])
@pytest.mark.parametrize("path", ["/ping", "/me"])
async def test_a_typed_in_credential_meets_an_unreachable_provider(
    api: httpx.AsyncClient, provider: Provider, path: str, behaviour: Behaviour
) -> None:
    """``/ping`` is the health check (step 6), ``/me`` the account resolve (step 9)."""
    iid = await create(api)
    provider.behaviour[path] = behaviour
    response = await submit(api, iid, "key-alice")
    assert_unavailable(response)
    assert "key-alice" not in response.text
    record = (await api.get(f"/v1/integrations/{iid}")).json()
    assert (record["status"], record["connection"]) == ("pending", None)
    assert record["status_reason"].startswith("provider unavailable: ")
    audit = (await api.get(f"/v1/integrations/{iid}/audit")).json()
    assert (audit[-1]["action"], audit[-1]["outcome"], audit[-1]["detail"]["code"]) == (
        "connect",
        "failed",
        "provider_unavailable",
    )
    # Once the provider answers again, the same credential connects and the reason is cleared.
    provider.behaviour.clear()
    connected = await submit(api, iid, "key-alice")
    assert connected.status_code == 200, connected.text
    assert (connected.json()["status"], connected.json()["status_reason"]) == ("connected", "")


@pytest.mark.parametrize("behaviour", ["close", "silent"])
async def test_a_flow_whose_token_endpoint_is_unreachable(
    api: httpx.AsyncClient, provider: Provider, behaviour: Behaviour
) -> None:
    iid = await create(api)
    provider.behaviour["/token"] = behaviour
    redirect = await api.post(f"/v1/integrations/{iid}/connect", json={"return_url": RETURN_URL})
    start = await api.get(redirect.json()["redirect_url"].removeprefix("http://tether.test"))
    assert start.status_code == 302, start.text
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    back = await api.get("/v1/oauth/callback", params={"state": state, "code": "a-code"})
    assert back.status_code == 302, back.text
    assert parse_qs(urlsplit(back.headers["location"]).query) == {
        "tether_result": ["failed"],
        "tether_error": ["provider_unavailable"],
    }
    record = (await api.get(f"/v1/integrations/{iid}")).json()
    assert record["status"] == "pending"
    assert record["status_reason"].startswith("provider unavailable: the token endpoint")


async def test_validate_against_an_unreachable_provider_is_unknown_not_a_crash(
    api: httpx.AsyncClient, provider: Provider
) -> None:
    iid = await create(api)
    assert (await submit(api, iid, "key-alice")).status_code == 200
    provider.behaviour["/ping"] = "close"
    validated = await api.post(f"/v1/integrations/{iid}/validate")
    assert validated.status_code == 200, validated.text
    body = validated.json()
    assert body["is_valid"] is False
    assert (body["integration"]["status"], body["integration"]["health"]) == ("connected", "unknown")
    assert body["integration"]["status_reason"].startswith("provider unavailable: ")
    provider.behaviour.clear()
    again = (await api.post(f"/v1/integrations/{iid}/validate")).json()
    assert (again["is_valid"], again["integration"]["status_reason"]) == (True, "")


async def test_a_typed_in_key_of_another_account_is_refused(api: httpx.AsyncClient) -> None:
    iid = await create(api)
    assert (await submit(api, iid, "key-alice")).json()["account"]["account_id"] == "alice"
    refused = await submit(api, iid, "key-mallory")
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "account_mismatch")
    assert "key-mallory" not in refused.text
    record = (await api.get(f"/v1/integrations/{iid}")).json()
    assert (record["status"], record["account"]["account_id"]) == ("connected", "alice")
    audit = (await api.get(f"/v1/integrations/{iid}/audit")).json()
    assert audit[-1]["detail"]["code"] == "account_mismatch" and audit[-1]["detail"]["grant_revoked"] is False
    # The same account's new key is fine.
    assert (await submit(api, iid, "key-alice")).status_code == 200


@pytest.mark.parametrize("behaviour", ["close", "silent"])
async def test_a_custom_revocation_that_cannot_reach_the_provider(
    api: httpx.AsyncClient, provider: Provider, behaviour: Behaviour
) -> None:
    """The connection's own ``revoke()`` lets httpx's transport error out; it is the provider's trouble, not a 500."""
    iid = await create(api)
    assert (await submit(api, iid, "key-alice")).status_code == 200
    provider.behaviour["/revoke-key"] = behaviour
    refused = await api.post(f"/v1/integrations/{iid}/disconnect")
    assert (refused.status_code, refused.json()["error"]["code"]) == (502, "revocation_failed"), refused.text
    assert "key-alice" not in refused.text
    record = (await api.get(f"/v1/integrations/{iid}")).json()
    assert record["status"] == "connected"  # nothing was deleted: the key still works and can be revoked later
    audit = (await api.get(f"/v1/integrations/{iid}/audit")).json()
    assert (audit[-1]["action"], audit[-1]["outcome"], audit[-1]["detail"]) == (
        "disconnect",
        "failed",
        {"step": "revoke", "code": "provider_unavailable"},
    )
    provider.behaviour.clear()
    done = await api.post(f"/v1/integrations/{iid}/disconnect")
    assert done.status_code == 200, done.text
    assert (await api.get(f"/v1/integrations/{iid}")).json()["status"] == "disconnected"
