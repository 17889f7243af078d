"""No account switch through parallel flows (issue 16, item 2), against a running Tether and a real OAuth server.

A new connect supersedes the pending flows of the integration, so the older one's callback is ``invalid_state``;
and a flow that resolves another account than the connected one is refused with ``account_mismatch``, its fresh
grant revoked at the provider, the connected grant left as it was.
"""

from __future__ import annotations

import time
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
    env = panva_env("ACCOUNTS", "ACCOUNTS", userinfo=True)
    with live_tether(
        database.url, str(tmp_path), monkeypatch, definition_module="support.account_definition", env=env
    ) as world:
        yield world


def start(world: World, integration_id: str, action: str = "connect") -> tuple[httpx.Client, str]:
    """A browser that followed Tether's start URL; returns it and the provider's authorization URL."""
    redirect = world.api.post(f"/v1/integrations/{integration_id}/{action}", json={"return_url": RETURN_URL})
    assert redirect.status_code == 200, redirect.text
    browser = httpx.Client(follow_redirects=False, timeout=30)
    started = browser.get(redirect.json()["redirect_url"])
    assert started.status_code == 302, started.text
    return browser, started.headers["location"]


def finish(world: World, browser: httpx.Client, authorization_url: str, *, login: str) -> dict[str, list[str]]:
    """Consent at panva as ``login`` and follow the callback; returns the query Tether sent the browser back with."""
    try:
        back = browser.get(world.panva.consent(authorization_url, login=login))
    finally:
        browser.close()
    assert back.status_code == 302, back.text
    location = back.headers["location"]
    assert location.startswith(RETURN_URL)
    return parse_qs(urlsplit(location).query)


def access_token_sub(world: World, integration_id: str) -> str:
    token = world.api.get(f"/v1/integrations/{integration_id}/access-token").json()["access_token"]
    introspection = world.panva.introspect(token)
    assert introspection["active"] is True
    return str(introspection["sub"])


def revoked_accounts(world: World) -> set[str]:
    """Whose tokens panva destroyed. Its event lines are read by a thread, so wait briefly for the first one."""
    for _ in range(100):
        found = {who for name, who in world.panva.events if name.endswith("_token.destroyed")}
        if found:
            return found
        time.sleep(0.05)
    return set()


def test_an_older_parallel_flow_cannot_finish_after_a_newer_one(world: World) -> None:
    iid = world.api.post("/v1/integrations", json={"definition_id": "accounts", "owner_id": "o1"}).json()["id"]
    older_browser, older = start(world, iid)
    newer_browser, newer = start(world, iid)
    assert finish(world, newer_browser, newer, login="bob")["tether_result"] == ["connected"]
    assert finish(world, older_browser, older, login="alice") == {
        "tether_result": ["failed"],
        "tether_error": ["invalid_state"],
    }
    record = world.api.get(f"/v1/integrations/{iid}").json()
    assert (record["status"], record["account"]["account_id"]) == ("connected", "bob")
    assert access_token_sub(world, iid) == "bob"
    # The older flow's code was never exchanged: panva granted tokens once.
    assert world.panva.grants("authorization_code") == ["grant.success"]


def test_a_reconnect_as_another_account_is_refused_and_its_grant_revoked(world: World) -> None:
    iid = world.api.post("/v1/integrations", json={"definition_id": "accounts", "owner_id": "o2"}).json()["id"]
    browser, url = start(world, iid)
    assert finish(world, browser, url, login="alice")["tether_result"] == ["connected"]
    connected_grant = world.api.get(f"/v1/integrations/{iid}/access-token").json()["access_token"]

    browser, url = start(world, iid, "reconnect")
    assert finish(world, browser, url, login="mallory") == {
        "tether_result": ["failed"],
        "tether_error": ["account_mismatch"],
    }
    record = world.api.get(f"/v1/integrations/{iid}").json()
    assert (record["status"], record["account"]["account_id"]) == ("connected", "alice")
    assert access_token_sub(world, iid) == "alice"
    assert world.panva.introspect(connected_grant)["active"] is True
    # The refused flow's grant (refresh and access token) was revoked at the provider, nothing of alice's was.
    assert revoked_accounts(world) == {"mallory"}
    audit = world.api.get(f"/v1/integrations/{iid}/audit").json()
    refused = audit[-1]
    assert (refused["action"], refused["outcome"]) == ("connect", "failed")
    assert refused["detail"] == {
        "step": 9,
        "code": "account_mismatch",
        "connected_account": "alice",
        "offered_account": "mallory",
        "grant_revoked": True,
    }

    # The same account may reconnect; and after a disconnect, another account may connect.
    browser, url = start(world, iid, "reconnect")
    assert finish(world, browser, url, login="alice")["tether_result"] == ["connected"]
    assert world.api.post(f"/v1/integrations/{iid}/disconnect").status_code == 200
    browser, url = start(world, iid)
    assert finish(world, browser, url, login="mallory")["tether_result"] == ["connected"]
    assert world.api.get(f"/v1/integrations/{iid}").json()["account"]["account_id"] == "mallory"
