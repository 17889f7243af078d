"""The egress guard's own-origin rule: while the sandbox is on, exactly ``public_url``'s origin under ``/sandbox/``
is admitted (plain http on loopback included); nothing else of that origin, no other loopback port, no redirect off
the prefix, and nothing at all once the sandbox is off. Proven against the live server, with the guard as every
client gets it (no ``allow_loopback``)."""

from __future__ import annotations

import pytest

from engine.errors import EgressRefused
from engine.kit.egress import egress_client, egress_sync_client, own_origin
from engine.sandbox.oauth import CLIENT_ID
from engine.settings import Settings
from sandbox.conftest import LiveSandbox
from support.server import free_port


async def test_the_sandbox_is_reached_through_the_guard(live: LiveSandbox) -> None:
    async with egress_client(headers={"X-Api-Key": "sbx_key_acme"}) as client:
        answer = await client.get(f"{live.sandbox}/api/v1/me")
    assert answer.status_code == 200 and answer.json()["account"] == "acme"


def test_the_sync_client_too(live: LiveSandbox) -> None:
    with egress_sync_client(base_url=f"{live.sandbox}/api/v1", headers={"X-Api-Key": "sbx_key_initech"}) as client:
        assert client.get("/me").json()["account"] == "initech"


@pytest.mark.parametrize(
    "path",
    [
        "/healthz",
        "/v1/integrations",
        "/sandboxes/x",
        "/sandbox",
        "/sandbox/%2e%2e/healthz",
        "/sandbox/a%2Fb",
        "/v1/webhooks/abc",
    ],
)
async def test_the_same_origin_outside_the_prefix_is_refused(live: LiveSandbox, path: str) -> None:
    async with egress_client() as client:
        with pytest.raises(EgressRefused):
            await client.get(f"{live.base}{path}")


async def test_another_loopback_port_and_name_are_refused(live: LiveSandbox) -> None:
    other = free_port()
    async with egress_client() as client:
        for url in (
            f"http://127.0.0.1:{other}/sandbox/api/v1/me",
            live.sandbox.replace("127.0.0.1", "localhost") + "/api/v1/me",
            live.sandbox.replace("http:", "https:") + "/api/v1/me",
        ):
            with pytest.raises(EgressRefused):
                await client.get(url)


async def test_a_redirect_off_the_prefix_is_checked_again(live: LiveSandbox) -> None:
    # The authorize endpoint redirects an invalid request back to its redirect_uri: here Tether's own callback.
    params = {"client_id": CLIENT_ID, "redirect_uri": f"{live.base}/v1/oauth/callback", "response_type": "token"}
    async with egress_client() as client:
        with pytest.raises(EgressRefused):
            await client.get(f"{live.sandbox}/oauth/authorize", params=params)
        not_followed = await client.get(f"{live.sandbox}/oauth/authorize", params=params, follow_redirects=False)
    assert not_followed.status_code == 302


async def test_own_paths_admit_exactly_the_named_prefix(live: LiveSandbox) -> None:
    async with egress_client(own_paths=("/v1/webhooks/",), follow_redirects=False) as client:
        answer = await client.post(f"{live.base}/v1/webhooks/{'x' * 43}", content=b"{}")
        assert answer.status_code < 500  # reached Tether's webhook endpoint (an unknown token: refused there)
        with pytest.raises(EgressRefused):
            await client.get(f"{live.base}/v1/integrations")


async def test_nothing_is_admitted_with_the_sandbox_off(live: LiveSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_SANDBOX", "0")
    async with egress_client() as client:
        with pytest.raises(EgressRefused):
            await client.get(f"{live.sandbox}/api/v1/me")


def test_the_rule_follows_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TETHER_SANDBOX", "TETHER_PUBLIC_URL", "TETHER_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    embedded = Settings(database_url="sqlite:///x.db", host="127.0.0.1", port=8123)
    assert embedded.sandbox_enabled() and embedded.embedded_default()
    rule = own_origin(embedded)
    assert rule is not None and (rule.scheme, rule.host, rule.port, rule.prefixes) == (
        "http",
        "127.0.0.1",
        8123,
        ("/sandbox/",),
    )
    assert not Settings(database_url="postgresql://db/x", host="127.0.0.1").sandbox_enabled()
    assert not Settings(database_url="sqlite:///x.db", public_url="https://tether.example").sandbox_enabled()
    assert not Settings(database_url="sqlite:///x.db", sandbox=False).sandbox_enabled()
    forced = Settings(database_url="postgresql://db/x", public_url="https://tether.example/base", sandbox=True)
    rule = own_origin(forced, ("/v1/webhooks/",))
    assert rule is not None and (rule.host, rule.port, rule.prefixes) == (
        "tether.example",
        443,
        ("/base/sandbox/", "/base/v1/webhooks/"),
    )
    assert own_origin(Settings(database_url="postgresql://db/x")) is None
