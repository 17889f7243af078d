"""The whole connection lifecycle over HTTP against a running Tether and a real OAuth server (panva):
create, connect (consent automated), callback, validate, reconnect, upgrade scopes, disconnect with revocation,
and an audit row for each step. Plus every callback error code, as a browser would meet it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from engine.store.database import Database
from support.live import RETURN_URL, LiveTether, live_tether, panva_env

#: One name for the live Tether these tests drive.
World = LiveTether


@pytest.fixture
def world(database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    env = panva_env("PANVA", "OAUTH")
    with live_tether(
        database.url, str(tmp_path), monkeypatch, definition_module="support.panva_definition", env=env
    ) as world:
        yield world


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
