"""The sandbox page (accounts, keys, counts, a button per control whose accessible name names its account, each
button's URL a working control), and the sandbox on PostgreSQL where it is not the embedded default: the same
API, and controls that need a server API key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from engine.api import create_app
from engine.api.principal import create_api_key
from engine.custody import oauth as custody
from engine.custody.crypto import generate_master_key
from engine.runtime import Runtime
from engine.sandbox.seed import ACCOUNTS
from engine.settings import Settings
from sandbox.conftest import LiveSandbox, start
from sandbox.test_oauth import BASIC, approve, endpoints, exchange, me
from support.server import free_port, serve


class Buttons(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.buttons: list[dict[str, str]] = []
        self.scripts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "button":
            self.buttons.append(values)
        if tag == "script" and "src" in values:
            self.scripts.append(values["src"])


def test_the_page_lists_accounts_and_every_button_works(live: LiveSandbox) -> None:
    page = live.http.get(f"{live.sandbox}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page.text
    for account in ACCOUNTS:
        assert account.name in page.text and account.api_key in page.text
    parsed = Buttons()
    parsed.feed(page.text)
    assert parsed.scripts == ["/sandbox/page.js"]
    assert live.http.get(live.base + parsed.scripts[0]).headers["content-type"].startswith("text/javascript")
    for account in ACCOUNTS:
        mine = [b for b in parsed.buttons if account.name in b.get("aria-label", "")]
        assert len(mine) == 7, [b.get("aria-label") for b in mine]
    labels = [b["aria-label"] for b in parsed.buttons]
    assert len(labels) == len(set(labels)) == 7 * len(ACCOUNTS)
    # Each button's control answers as its script would call it (the resend after the add-a-user, reset last).
    order = {"/duplicate": 1, "/reset": 2}
    for button in sorted(parsed.buttons, key=lambda b: order.get(b["data-control"][b["data-control"].rfind("/") :], 0)):
        body = json.loads(button["data-body"]) if "data-body" in button else None
        assert button["data-control"].startswith("/sandbox/control/accounts/")
        answer = live.http.post(live.base + button["data-control"], json=body)
        assert answer.status_code in (200, 201), (button["aria-label"], answer.text)
    for account in ACCOUNTS:
        assert live.control(f"{account.id}/reset").status_code == 200


@pytest.fixture
def postgres_live(postgres_database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveSandbox]:  # type: ignore[no-untyped-def]
    yield from start(postgres_database.url, str(tmp_path), monkeypatch)


def test_on_postgres_the_api_pages_and_the_controls_need_a_server_key(postgres_live: LiveSandbox) -> None:
    live = postgres_live
    assert not live.runtime.settings.embedded_default() and live.runtime.settings.sandbox_enabled()
    seen, cursor = [], None
    while True:
        answer = live.http.get(
            f"{live.sandbox}/api/v1/memberships",
            headers={"X-Api-Key": "sbx_key_acme"},
            params={"limit": "5", **({"cursor": cursor} if cursor else {})},
        )
        assert answer.status_code == 200, answer.text
        seen += answer.json()["data"]
        if (cursor := answer.json()["next_cursor"]) is None:
            break
    assert len(seen) == len({m["id"] for m in seen}) == 12
    refused = live.control("acme/expire-tokens")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthenticated"
    user, _ = create_api_key(live.runtime.db, tenant="t1", role="user", owner="o1")
    forbidden = live.control("acme/expire-tokens", headers={"Authorization": f"Bearer {user}"})
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden"
    server, _ = create_api_key(live.runtime.db, tenant="t1", role="server")
    allowed = live.control("acme/fail", json={"status": 429}, headers={"Authorization": f"Bearer {server}"})
    assert allowed.status_code == 200
    assert live.http.get(f"{live.sandbox}/api/v1/me", headers={"X-Api-Key": "sbx_key_acme"}).status_code == 429


def test_the_sandbox_is_not_in_the_openapi_document(live: LiveSandbox) -> None:
    paths = live.http.get(f"{live.base}/openapi.json").json()["paths"]
    assert paths and not [p for p in paths if p.startswith("/sandbox")]


def test_with_the_sandbox_off_nothing_is_served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_SECRET_MASTER_KEY", generate_master_key())
    runtime = Runtime.start(
        Settings(database_url=f"sqlite:///{tmp_path / 'off.db'}", state_dir=str(tmp_path), sandbox=False), migrate=True
    )
    try:
        with serve(create_app(runtime), free_port()) as base, httpx.Client() as http:
            for path in ("/sandbox/", "/sandbox/api/v1/me", "/sandbox/oauth/authorize"):
                assert http.get(base + path, headers={"X-Api-Key": "sbx_key_acme"}).status_code == 404
            assert http.post(base + "/sandbox/control/accounts/acme/reset").status_code == 404
    finally:
        runtime.close()


async def test_on_postgres_codes_and_refresh_tokens_are_single_use(postgres_live: LiveSandbox) -> None:
    live = postgres_live
    approved = approve(live, account="globex")
    tokens = await exchange(live, approved)
    assert tokens.refresh_token
    with pytest.raises(custody.InvalidGrant):
        await exchange(live, approved)
    approved = approve(live, account="globex")
    tokens = await exchange(live, approved)
    assert tokens.refresh_token
    renewed = await custody.refresh(endpoints(live).token_url, BASIC, tokens.refresh_token, loopback=False)
    assert me(live, renewed.access_token).json()["account"] == "globex"
    with pytest.raises(custody.InvalidGrant):
        await custody.refresh(endpoints(live).token_url, BASIC, tokens.refresh_token, loopback=False)
    assert me(live, renewed.access_token).status_code == 401
