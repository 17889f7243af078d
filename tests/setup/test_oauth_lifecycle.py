"""The whole connection lifecycle over HTTP against a running Tether and a real OAuth server (panva):
create, connect (consent automated), callback, validate, reconnect, upgrade scopes, disconnect with revocation,
and an audit row for each step. Plus every callback error code, as a browser would meet it."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from engine.api import create_app
from engine.api.principal import create_api_key
from engine.crypto import generate_master_key
from engine.database import Database
from engine.runtime import Runtime
from engine.settings import Settings
from support.oracles import PanvaServer, panva_client
from support.server import free_port, serve

RETURN_URL = "https://app.example/settings/integrations"


@dataclass
class World:
    base: str
    panva: PanvaServer
    runtime: Runtime
    api: httpx.Client
    key: str


@pytest.fixture
def world(database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    port = free_port()
    callback = f"http://127.0.0.1:{port}/v1/oauth/callback"
    with PanvaServer(clients=[panva_client(redirect_uris=[callback])], access_token_ttl=900) as panva:
        env = {
            "TETHER_SECRET_MASTER_KEY": generate_master_key(),
            "TETHER_PANVA_CLIENT_ID": panva.client["client_id"],
            "TETHER_SECRET_PANVA_CLIENT_SECRET": panva.client["client_secret"],
            "TETHER_TEST_OAUTH_AUTHORIZE_URL": panva.authorize_url,
            "TETHER_TEST_OAUTH_TOKEN_URL": panva.token_url,
            "TETHER_TEST_OAUTH_REVOKE_URL": panva.revoke_url,
        }
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        import support.panva_definition

        importlib.reload(support.panva_definition)
        settings = Settings(
            database_url=database.url,
            allow_loopback_providers=True,
            definition_modules="support.panva_definition",
            state_dir=str(tmp_path),
            public_url=f"http://127.0.0.1:{port}",
            allowed_return_origins_list="https://app.example",
        )
        runtime = Runtime.start(settings)
        key, _ = create_api_key(runtime.db, tenant="acme", role="server", name="host app")
        with (
            serve(create_app(runtime), port) as base,
            httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as api,
        ):
            yield World(base, panva, runtime, api, key)
        runtime.close()


def browser_connect(world: World, redirect_url: str) -> httpx.Response:
    """Play the user's browser: Tether's start URL, the provider's consent, back to Tether's callback."""
    with httpx.Client(follow_redirects=False, timeout=30) as browser:
        start = browser.get(redirect_url)
        assert start.status_code == 302, start.text
        callback_url = world.panva.consent(start.headers["location"])
        assert callback_url.startswith(world.base + "/v1/oauth/callback")
        return browser.get(callback_url)


def test_full_lifecycle(world: World) -> None:
    api = world.api
    created = api.post("/v1/integrations", json={"definition_id": "panva", "owner_id": "alice"})
    assert created.status_code == 201, created.text
    iid = created.json()["id"]
    assert created.json()["status"] == "pending"

    connect = api.post(f"/v1/integrations/{iid}/connect", json={"connection": "PanvaOAuth", "return_url": RETURN_URL})
    assert connect.status_code == 200, connect.text
    back = browser_connect(world, connect.json()["redirect_url"])
    assert back.status_code == 302
    location = back.headers["location"]
    assert location.startswith(RETURN_URL)
    assert parse_qs(urlsplit(location).query) == {"tether_result": ["connected"], "tether_integration": [iid]}

    record = api.get(f"/v1/integrations/{iid}").json()
    assert (record["status"], record["health"], record["connection"]) == ("connected", "valid", "PanvaOAuth")
    assert "token" not in str(record).lower()

    validated = api.post(f"/v1/integrations/{iid}/validate")
    assert validated.status_code == 200 and validated.json()["is_valid"] is True

    token = api.get(f"/v1/integrations/{iid}/access-token").json()
    assert set(token) == {"access_token", "token_type", "expires_at", "scopes"}
    assert world.panva.introspect(token["access_token"])["active"] is True

    reconnect = api.post(f"/v1/integrations/{iid}/reconnect", json={"return_url": RETURN_URL})
    assert browser_connect(world, reconnect.json()["redirect_url"]).status_code == 302

    upgrade = api.post(f"/v1/integrations/{iid}/upgrade", json={"return_url": RETURN_URL})
    assert browser_connect(world, upgrade.json()["redirect_url"]).status_code == 302
    from support.panva_definition import PanvaGrant

    grant = world.runtime.keystore.require(iid, PanvaGrant)
    assert "api:write" in grant.scopes
    upgraded_token = api.get(f"/v1/integrations/{iid}/access-token").json()
    assert "api:write" in upgraded_token["scopes"]

    disconnected = api.post(f"/v1/integrations/{iid}/disconnect")
    assert disconnected.status_code == 200 and disconnected.json()["integration"]["status"] == "disconnected"
    assert world.panva.introspect(grant.slot.refresh_token.get_secret_value())["active"] is False

    audit = [(e["action"], e["outcome"]) for e in api.get(f"/v1/integrations/{iid}/audit").json()]
    assert audit == [
        ("configure", "ok"),
        ("connect_started", "ok"),
        ("connect", "ok"),
        ("validate", "ok"),
        ("connect_started", "ok"),
        ("connect", "ok"),
        ("upgrade_started", "ok"),
        ("connect", "ok"),
        ("disconnect", "ok"),
    ]


def test_callback_errors_as_a_browser_meets_them(world: World) -> None:
    api = world.api
    iid = api.post("/v1/integrations", json={"definition_id": "panva", "owner_id": "bob"}).json()["id"]
    redirect_url = api.post(f"/v1/integrations/{iid}/connect", json={"return_url": RETURN_URL}).json()["redirect_url"]
    with httpx.Client(follow_redirects=False, timeout=30) as browser:
        start = browser.get(redirect_url)
        callback_url = world.panva.consent(start.headers["location"])
        with httpx.Client(follow_redirects=False, timeout=30) as stranger:
            no_cookie = stranger.get(callback_url)
            assert (no_cookie.status_code, no_cookie.json()["error"]["code"]) == (400, "missing_flow_state")
            stranger.cookies.set("tether_flow", "someone-else", domain="127.0.0.1", path="/v1/oauth")
            mismatch = stranger.get(callback_url)
            assert (mismatch.status_code, mismatch.json()["error"]["code"]) == (403, "session_mismatch")
        first = browser.get(callback_url)
        assert first.status_code == 302
        browser.cookies.set(
            "tether_flow", parse_qs(urlsplit(redirect_url).query)["session"][0], domain="127.0.0.1", path="/v1/oauth"
        )
        replay = browser.get(callback_url)
        assert (replay.status_code, replay.json()["error"]["code"]) == (400, "invalid_state")

    redirect_url = api.post(f"/v1/integrations/{iid}/connect", json={"return_url": RETURN_URL}).json()["redirect_url"]
    with httpx.Client(follow_redirects=False, timeout=30) as browser:
        start = browser.get(redirect_url)
        state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
        denied = browser.get(
            f"{world.base}/v1/oauth/callback",
            params={"state": state, "error": "access_denied", "error_description": "<b>nope</b>"},
        )
    assert denied.status_code == 302
    assert parse_qs(urlsplit(denied.headers["location"]).query) == {
        "tether_result": ["failed"],
        "tether_error": ["oauth_failed"],
    }
    unknown = httpx.get(f"{world.base}/v1/oauth/callback", params={"state": "forged"})
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (400, "invalid_state")


def test_return_url_must_be_an_allowed_origin(world: World) -> None:
    iid = world.api.post("/v1/integrations", json={"definition_id": "panva", "owner_id": "eve"}).json()["id"]
    refused = world.api.post(f"/v1/integrations/{iid}/connect", json={"return_url": "https://evil.example/x"})
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "return_url_refused")
