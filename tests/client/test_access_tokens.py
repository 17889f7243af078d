"""Access tokens through the client against a live Tether and a real OAuth server (panva): ``connect`` gives the
browser's URL, ``get_access_token`` a live token, ``POST …/access-token/refresh`` a new one before the old expired,
and ``with_integration_access`` retries once with a fresh token when the provider answers 401 (a returned response
or ``ProviderUnauthorized`` raised), on the sync and the async client.

The provider's API is a small resource server on 127.0.0.1 that accepts a token panva's introspection reports
active and that it has not been told is revoked: panva (oidc-provider) revokes the whole grant with an access token,
refresh token included, so "this one access token was revoked at the provider, the grant lives" is played here."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from engine.store.database import Database
from support.live import RETURN_URL, LiveTether, live_tether, panva_env
from tether_client import AsyncClient, Client, ProviderUnauthorized


@pytest.fixture
def world(sqlite_database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveTether]:
    env = panva_env("PANVA", "OAUTH")
    with live_tether(
        sqlite_database.url, str(tmp_path), monkeypatch, definition_module="support.panva_definition", env=env
    ) as world:
        yield world


def connected(world: LiveTether, tether: Client, owner: str) -> str:
    """An integration connected the way a user does it: the client's redirect URL, panva's consent, the callback."""
    iid = tether.create_integration("panva", owner_id=owner).id
    redirect_url = tether.connect(iid, connection="PanvaOAuth", return_url=RETURN_URL)
    assert redirect_url.startswith(world.base)
    with httpx.Client(follow_redirects=False, timeout=30) as browser:
        start = browser.get(redirect_url)
        back = browser.get(world.panva.consent(start.headers["location"]))
    assert back.status_code == 302 and back.headers["location"].startswith(RETURN_URL)
    assert tether.get_integration(iid).status == "connected"
    return iid


@dataclass
class ResourceServer:
    """The provider's API: ``GET /me`` with a bearer token; 401 for a revoked or inactive one."""

    world: LiveTether
    revoked: set[str] = field(default_factory=set)
    url: str = ""

    def answer(self, authorization: str) -> tuple[int, dict[str, object]]:
        token = authorization.removeprefix("Bearer ")
        if token in self.revoked or not self.world.panva.introspect(token)["active"]:
            return 401, {"error": "invalid_token"}
        return 200, {"sub": self.world.panva.introspect(token)["sub"]}


@pytest.fixture
def provider(world: LiveTether) -> Iterator[ResourceServer]:
    resource = ResourceServer(world)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = resource.answer(self.headers.get("Authorization", ""))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:  # quiet test output
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    resource.url = f"http://127.0.0.1:{server.server_address[1]}/me"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield resource
    finally:
        server.shutdown()
        server.server_close()


def test_a_forced_refresh_hands_out_a_new_live_token(world: LiveTether) -> None:
    with Client(world.base, api_key=world.key) as tether:
        iid = connected(world, tether, "alice")
        first = tether.get_access_token(iid)
        assert tether.get_access_token(iid).access_token == first.access_token  # valid: no refresh
        fresh = tether.get_access_token(iid, refresh=True)
        assert fresh.access_token != first.access_token
        assert world.panva.introspect(fresh.access_token)["active"] is True
        assert tether.get_access_token(iid).access_token == fresh.access_token


def test_with_integration_access_retries_once_on_a_provider_401(world: LiveTether, provider: ResourceServer) -> None:
    with Client(world.base, api_key=world.key) as tether:
        iid = connected(world, tether, "bob")
        stale = tether.get_access_token(iid).access_token
        assert httpx.get(provider.url, headers={"Authorization": f"Bearer {stale}"}).status_code == 200
        provider.revoked.add(stale)
        seen: list[str] = []

        def call(token: str) -> httpx.Response:
            seen.append(token)
            return httpx.get(provider.url, headers={"Authorization": f"Bearer {token}"})

        answer = tether.with_integration_access(iid, call)
        assert answer.status_code == 200 and answer.json()["sub"]
        assert seen[0] == stale and len(seen) == 2 and seen[1] != stale

        calls: list[str] = []

        def fine(token: str) -> str:
            calls.append(token)
            return "done"

        assert tether.with_integration_access(iid, fine) == "done"
        assert calls == [seen[1]]  # no 401, no refresh, one call


async def test_the_async_client_retries_when_fn_raises_provider_unauthorized(
    world: LiveTether, provider: ResourceServer
) -> None:
    with Client(world.base, api_key=world.key) as setup:
        iid = connected(world, setup, "carol")
    async with AsyncClient(world.base, api_key=world.key) as tether:
        stale = (await tether.get_access_token(iid)).access_token
        provider.revoked.add(stale)
        seen: list[str] = []

        async def call(token: str) -> dict[str, object]:
            seen.append(token)
            async with httpx.AsyncClient() as http:
                response = await http.get(provider.url, headers={"Authorization": f"Bearer {token}"})
            if response.status_code == 401:
                raise ProviderUnauthorized()
            return response.json()

        assert (await tether.with_integration_access(iid, call))["sub"]
        assert len(seen) == 2 and seen[0] == stale != seen[1]

        async def always_refused(token: str) -> None:
            raise ProviderUnauthorized()

        with pytest.raises(ProviderUnauthorized):  # the second refusal is the caller's: one retry, no loop
            await tether.with_integration_access(iid, always_refused)
