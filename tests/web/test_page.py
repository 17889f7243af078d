"""The integrations page: fast route tests (ASGI) and one end-to-end run in a real headless Chromium.

The browser tests drive Debian's ``/usr/bin/chromium`` through the Python ``playwright`` driver:

- dev login, Connect through the real panva OAuth server (its own login and consent forms, filled in the browser),
  the callback page, the Valid badge and the account, Validate, Disconnect with the confirmation dialog, a failed
  load with Retry, and the failed callback phase;
- the cards the catalog describes (``support.page_definition``): a typed-in credential form built from the slot's
  schema (a validation error shown beside its field, then success), no "Connect" where the OAuth client is unset, a
  disabled definition naming its variables, a card with no connection saying why, a run's counts and a failed run's
  message in words, at 390 px wide with every button named after its card.

Screenshots of each state go to the test's own ``tmp_path`` folder (printed) and the last set is copied to
``.cache/screenshots/page/<test>/`` for a person to look at.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.testclient import TestClient

from engine import IntegrationMetadata
from engine.api import create_app
from engine.catalog.registry import Registry
from engine.custody.crypto import generate_master_key
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database
from engine.store.tables import Integration
from engine.web import SESSION_COOKIE, STATIC_DIR, dev_login_enabled, router
from support.browser import CHROMIUM, CHROMIUM_ARGS, browser_or_skip, shooter
from support.oracles import PanvaServer, panva_client
from support.server import free_port, serve


def web_app(runtime: Runtime) -> FastAPI:
    """What app.py will do once the page is mounted there."""
    app = create_app(runtime)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def panva_env(monkeypatch: pytest.MonkeyPatch, panva: PanvaServer | None) -> None:
    env = {
        "TETHER_SECRET_MASTER_KEY": generate_master_key(),
        "TETHER_PANVA_CLIENT_ID": panva.client["client_id"] if panva else "client",
        "TETHER_SECRET_PANVA_CLIENT_SECRET": panva.client["client_secret"] if panva else "secret",
    }
    if panva is not None:
        env |= {
            "TETHER_TEST_OAUTH_AUTHORIZE_URL": panva.authorize_url,
            "TETHER_TEST_OAUTH_TOKEN_URL": panva.token_url,
            "TETHER_TEST_OAUTH_REVOKE_URL": panva.revoke_url,
        }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("TETHER_DEV_LOGIN", raising=False)


def panva_registry(userinfo_url: str) -> Registry:
    """The panva test definition, with a connection that resolves the account from panva's userinfo endpoint."""
    import support.panva_definition as module

    module = importlib.reload(module)

    class PanvaAccountOAuth(module.PanvaOAuth):
        async def resolve(self, ctx: Any) -> IntegrationMetadata | None:
            token = ctx.credential.access_token.get_secret_value()
            async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
                claims = (await http.get(userinfo_url, headers={"Authorization": f"Bearer {token}"})).json()
            return IntegrationMetadata(account_id=claims["sub"], account_name=claims["sub"])

    definition = dataclasses.replace(module.definition, connections=(PanvaAccountOAuth, module.PanvaAppOnly))
    registry = Registry(allow_loopback=True)
    registry.register(definition)
    return registry


def start_runtime(
    database: Database, tmp_path: Path, port: int, userinfo_url: str, registry: Registry | None = None
) -> Runtime:
    settings = Settings(
        database_url=database.url,
        allow_loopback_providers=True,
        state_dir=str(tmp_path),
        public_url=f"http://127.0.0.1:{port}",
    )
    return Runtime.start(settings, registry=registry or panva_registry(userinfo_url))


# -- fast: the routes over ASGI ----------------------------------------------------------------------------------


@pytest.fixture
def client(sqlite_database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    panva_env(monkeypatch, None)
    runtime = start_runtime(sqlite_database, tmp_path, 8000, "http://127.0.0.1:9/me")
    with TestClient(web_app(runtime), base_url="http://127.0.0.1:8000", follow_redirects=False) as http:
        yield http
    runtime.close()


def login(http: TestClient, owner: str = "alice", tenant: str = "acme") -> httpx.Response:
    return http.post(
        "/dev/login",
        content=f"tenant={tenant}&owner={owner}&next=/integrations",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


def test_tether_js_and_css_are_served(client: TestClient) -> None:
    js = client.get("/static/tether.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    for name in (
        "listIntegrations",
        "getIntegrationStatus",
        "beginIntegrationConnect",
        "beginIntegrationUpgrade",
        "disconnectIntegration",
    ):
        assert name in js.text
    assert "access_token" not in js.text  # the helper never asks for (or names) a token
    assert client.get("/static/tether.css").status_code == 200
    assert client.get("/static/integrations.js").status_code == 200


#: Codes only an API caller or an operator meets (a malformed request, start-up, signature checks, the server-only
#: access-token route): not worded.
UNWORDED = {
    "no_access_token",
    "invalid_json", "missing_field", "method_not_allowed", "body_too_large", "invalid_definition",
    "configuration_error", "cel_error", "invalid_signature", "stale_delivery", "invalid_cursor", "invalid_trigger",
    "bad_request", "unsupported_media_type", "http_error", "invalid_handshake",
    # the change feed's parameters and the event endpoints' answers: a host app's code meets them, not a person
    "invalid_after", "invalid_limit", "invalid_endpoint_url", "delivery_in_flight", "http_status", "endpoint_disabled",
    "changes_cursor_expired",
    # a webhook's query string (a provider's request) and a subscription row's state (the operator's view)
    "invalid_query", "subscription_gone",
}  # fmt: skip


def test_every_error_a_person_meets_is_worded_and_every_worded_code_exists() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "errors.md").read_text().split("## SCIM")[0]
    codes = {line.split("`")[1] for line in docs.splitlines() if line.startswith("| `")}
    table = (STATIC_DIR / "tether.js").read_text().split("var ERROR_TEXT = {")[1].split("\n  };")[0]
    worded = {key for key in (line.strip().split(":")[0] for line in table.splitlines()) if key.isidentifier()}
    assert worded - codes == set(), "sentences for codes docs/errors.md does not have"
    assert codes - worded - UNWORDED == set(), "codes in docs/errors.md the page cannot put in words"


def test_page_needs_a_session_and_dev_login_sets_a_strict_httponly_cookie(client: TestClient) -> None:
    anonymous = client.get("/integrations")
    assert (anonymous.status_code, anonymous.headers["location"]) == (303, "/dev/login?next=/integrations")
    assert "Development login" in client.get("/dev/login").text

    signed_in = login(client)
    assert (signed_in.status_code, signed_in.headers["location"]) == (303, "/integrations")
    cookie = signed_in.headers["set-cookie"].lower()
    assert cookie.startswith(f"{SESSION_COOKIE}=") and "httponly" in cookie and "samesite=strict" in cookie

    page = client.get("/integrations")
    assert page.status_code == 200
    for text in ("Integrations", "Connect external OAuth providers to your account.", "Refresh", "Retry", "alice"):
        assert text in page.text
    assert client.get("/v1/integrations").json() == []


def test_cookie_requests_that_change_state_need_the_csrf_header(client: TestClient) -> None:
    login(client)
    refused = client.post("/v1/integrations", json={"definition_id": "panva"})
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden")
    created = client.post("/v1/integrations", json={"definition_id": "panva"}, headers={"X-Tether-CSRF": "1"})
    assert created.status_code == 201 and created.json()["owner_id"] == "alice"
    access = client.get(f"/web/integrations/{created.json()['id']}/access")
    assert access.json() == {"tier": None, "scopes": [], "upgrade_available": False, "products": {}}
    client.cookies.set(SESSION_COOKIE, "e30.forged")
    assert client.get("/v1/integrations").status_code == 401


def test_stored_records_are_counted_for_the_owner_only(client: TestClient) -> None:
    login(client)
    created = client.post("/v1/integrations", json={"definition_id": "panva"}, headers={"X-Tether-CSRF": "1"})
    records = client.get(f"/web/integrations/{created.json()['id']}/records")
    assert records.json() == {"counts": []}  # panva emits no schema
    login(client, owner="bob")
    other = client.get(f"/web/integrations/{created.json()['id']}/records")
    assert (other.status_code, other.json()["error"]["code"]) == (404, "not_found")


def test_dev_login_refuses_foreign_origins_and_open_redirects(client: TestClient) -> None:
    foreign = client.post(
        "/dev/login",
        content="owner=mallory",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": "https://evil.example"},
    )
    assert foreign.status_code == 401
    bounced = client.post(
        "/dev/login",
        content="owner=a&next=//evil.example/x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert bounced.headers["location"] == "/integrations"


def test_dev_login_can_be_switched_off(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    login(client)
    monkeypatch.setenv("TETHER_DEV_LOGIN", "0")
    assert login(client).status_code == 401
    assert client.get("/dev/login").status_code == 404
    assert client.get("/v1/integrations").status_code == 401  # the cookie is refused too
    page = client.get("/integrations")
    assert page.status_code == 200 and "You are not signed in" in page.text


def test_dev_login_is_never_on_by_default_with_postgresql(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TETHER_DEV_LOGIN", raising=False)
    assert dev_login_enabled(Settings(database_url="sqlite:///tether.db"))
    assert not dev_login_enabled(Settings(database_url="postgresql://u@db/tether"))
    assert not dev_login_enabled(Settings(database_url="sqlite:///t.db", host="0.0.0.0"))
    monkeypatch.setenv("TETHER_DEV_LOGIN", "1")
    assert dev_login_enabled(Settings(database_url="postgresql://u@db/tether"))


def test_callback_page_has_the_three_phases(client: TestClient) -> None:
    page = client.get(
        "/integrations/panva/callback", params={"tether_result": "failed", "tether_error": "oauth_failed"}
    )
    assert page.status_code == 200
    for text in ("Connecting integration…", "Integration connected", "Failed to connect integration"):
        assert text in page.text
    assert 'href="/integrations"' in page.text and "Back to integrations" in page.text


# -- slow: a real browser against a running Tether and the real panva OAuth server ---------------------------------


@pytest.mark.timeout(120)
def test_connect_validate_disconnect_in_a_real_browser(
    sqlite_database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shots: Path
) -> None:
    sync_playwright = browser_or_skip()
    port = free_port()
    callback = f"http://127.0.0.1:{port}/v1/oauth/callback"
    with PanvaServer(clients=[panva_client(redirect_uris=[callback])], access_token_ttl=900) as panva:
        panva_env(monkeypatch, panva)
        runtime = start_runtime(sqlite_database, tmp_path, port, panva.metadata["userinfo_endpoint"])
        try:
            with serve(web_app(runtime), port) as base, sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                try:
                    _walk_through(browser.new_page(), base, runtime, shots)
                finally:
                    browser.close()
        finally:
            runtime.close()


def _walk_through(page: Any, base: str, runtime: Runtime, shots: Path) -> None:
    from playwright.sync_api import expect

    page.set_default_timeout(15_000)
    expect.set_options(timeout=15_000)
    shot = shooter(page, shots)

    # Dev login, then the list.
    page.goto(f"{base}/integrations")
    expect(page).to_have_url(f"{base}/dev/login?next=/integrations")
    shot("01-dev-login")
    page.fill("input[name=owner]", "alice")
    page.fill("input[name=tenant]", "acme")
    page.click("button[type=submit]")
    card = page.locator('[data-testid="card-panva"]')
    expect(card.get_by_test_id("badge")).to_have_text("Not connected")
    expect(card).to_contain_text("Panva test server")
    expect(card).to_contain_text("A real OAuth 2.0 server for tests.")
    expect(card).to_contain_text("Manual")  # the panva definition's mode
    shot("02-list-not-connected")

    # Connect: panva's own login and consent forms, in the browser.
    card.get_by_role("button", name="Connect Panva test server", exact=True).click()
    page.wait_for_selector("input[name=login]")
    page.fill("input[name=login]", "alice@panva")
    page.fill("input[name=password]", "any password")
    shot("03-provider-login")
    page.click("button[type=submit]")
    page.wait_for_selector("input[name=prompt][value=consent]", state="attached")
    shot("04-provider-consent")
    page.click("button[type=submit]")

    # The callback page: connected, then back to the list with the Valid badge and the account.
    page.wait_for_selector('#callback[data-phase="connected"]')
    expect(page.get_by_role("heading", name="Integration connected")).to_be_visible()
    shot("05-callback-connected")
    page.wait_for_url(f"{base}/integrations?connected=panva")
    expect(card.get_by_test_id("badge")).to_have_text("Valid")
    expect(card.get_by_test_id("account")).to_have_text("alice@panva")
    expect(card.get_by_test_id("access")).to_have_text("read")
    named = "Panva test server (alice@panva)"  # how the connected card's buttons name it
    expect(card.get_by_role("button", name=f"Upgrade access of {named}")).to_be_visible()
    expect(card.get_by_test_id("runs")).to_contain_text("No runs yet.")
    expect(card.get_by_test_id("deliveries")).to_contain_text("No webhook deliveries yet.")
    shot("06-list-connected")

    # Validate.
    card.get_by_role("button", name=f"Validate {named}").click()
    expect(page.locator("#toast")).to_contain_text("the connection is valid")
    expect(card.get_by_test_id("badge")).to_have_text("Valid")
    shot("07-validated")

    # Disconnect asks first; Cancel keeps it, Disconnect removes it.
    card.get_by_role("button", name=f"Disconnect {named}").click()
    dialog = page.locator("dialog#confirm-disconnect")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name=f"Confirm: disconnect {named}")).to_be_visible()
    shot("08-confirm-disconnect")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(card.get_by_test_id("badge")).to_have_text("Valid")
    card.get_by_role("button", name=f"Disconnect {named}").click()
    dialog.get_by_test_id("confirm-disconnect").click()
    expect(page.locator("#toast")).to_contain_text("disconnected")
    expect(card.get_by_test_id("badge")).to_have_text("Not connected")
    expect(card.get_by_role("button", name="Connect Panva test server", exact=True)).to_be_visible()
    shot("09-disconnected")
    with runtime.db.session() as session:
        rows = session.exec(__import__("sqlmodel").select(Integration)).all()
    assert [(r.owner_id, r.tenant_id, r.status) for r in rows] == [("alice", "acme", "disconnected")]

    # A failed load shows the error with Retry; Retry loads again.
    page.route("**/v1/integrations", lambda route: route.fulfill(status=503, body="{}"))
    page.get_by_role("button", name="Refresh").click()
    expect(page.get_by_text("Failed to load integrations")).to_be_visible()
    shot("10-load-failed")
    page.unroute("**/v1/integrations")
    page.get_by_role("button", name="Retry").click()
    expect(page.locator("#load-error")).to_be_hidden()
    expect(card.get_by_test_id("badge")).to_have_text("Not connected")

    # The failed phase of the callback page, and its way back.
    page.goto(f"{base}/integrations/panva/callback?tether_result=failed&tether_error=oauth_failed")
    expect(page.get_by_role("heading", name="Failed to connect integration")).to_be_visible()
    expect(page.locator("[data-error-code]")).to_have_text("oauth_failed")
    shot("11-callback-failed")
    page.get_by_role("link", name="Back to integrations").click()
    expect(page).to_have_url(f"{base}/integrations")


# -- the cards the catalog describes, at a phone's width ------------------------------------------------------------

PHONE = {"width": 390, "height": 844}


def page_registry() -> Registry:
    from support import page_definition

    registry = Registry(allow_loopback=True)
    for definition in (page_definition.crm, page_definition.ledger, page_definition.relay):
        registry.register(definition)
    return registry


@pytest.mark.timeout(120)
def test_typed_in_form_disabled_cards_and_run_errors_at_390px(
    sqlite_database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shots: Path
) -> None:
    sync_playwright = browser_or_skip()
    monkeypatch.setenv("TETHER_SECRET_MASTER_KEY", generate_master_key())
    unset = ("TETHER_DEV_LOGIN", "TETHER_CRM_CLIENT_ID", "TETHER_SECRET_CRM_CLIENT_SECRET", "TETHER_LEDGER_API_BASE")
    for name in unset:
        monkeypatch.delenv(name, raising=False)
    port = free_port()
    runtime = start_runtime(sqlite_database, tmp_path, port, "", registry=page_registry())
    try:
        with serve(web_app(runtime), port) as base, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                _cards_at_phone_width(browser.new_page(viewport=PHONE), base, runtime, shots)
            finally:
                browser.close()
    finally:
        runtime.close()


def _cards_at_phone_width(page: Any, base: str, runtime: Runtime, shots: Path) -> None:
    from playwright.sync_api import expect

    page.set_default_timeout(15_000)
    expect.set_options(timeout=15_000)
    snap = shooter(page, shots)

    def shot(name: str) -> None:
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{name}: the page is {width} px wide at {PHONE['width']} px"
        snap(name)

    page.goto(f"{base}/dev/login?next=/integrations")
    page.fill("input[name=owner]", "bob")
    page.fill("input[name=tenant]", "acme")
    page.click("button[type=submit]")

    # A typed-in connection renders its slot's schema; the OAuth connection whose client is unset offers no Connect.
    crm = page.get_by_test_id("card-crm")
    expect(crm.get_by_test_id("badge")).to_have_text("Not connected")
    form = crm.get_by_test_id("form-CrmKeyConnection")
    expect(form).to_be_visible()
    key, workspace = form.locator("input[name=api_key]"), form.get_by_role("textbox", name="Workspace", exact=True)
    expect(form.locator("label[for]").first).to_have_text("API key * (hidden as you type)")
    expect(key).to_have_attribute("type", "password")
    expect(key).to_have_attribute("aria-required", "true")
    expect(workspace).to_have_attribute("type", "text")
    expect(form).to_contain_text("Settings → API → Create key")  # the field's description, as its hint
    expect(form.locator(".req").first).to_be_visible()
    expect(crm.get_by_role("button", name="Connect Demo CRM", exact=True)).to_have_count(0)
    expect(crm.get_by_test_id("unoffered-CrmOAuth")).to_contain_text(
        "TETHER_CRM_CLIENT_ID and TETHER_SECRET_CRM_CLIENT_SECRET"
    )

    # A disabled definition names the variables that enable it; a card with no connection says why.
    ledger = page.get_by_test_id("card-ledger")
    expect(ledger.get_by_test_id("badge")).to_have_text("Not enabled")
    expect(ledger.get_by_test_id("enable-with")).to_have_text(
        "To enable it, the server operator sets TETHER_LEDGER_API_BASE and TETHER_SECRET_LEDGER_SIGNING_SECRET"
        " and restarts Tether."
    )
    relay = page.get_by_test_id("card-relay")
    expect(relay.get_by_test_id("no-connection")).to_contain_text("the host app's server sets it up")
    expect(relay.get_by_role("button")).to_have_count(0)
    shot("01-cards-not-connected")

    # The API's 422 errors land beside their fields.
    submit = crm.get_by_role("button", name="Connect Demo CRM: API key")
    workspace.fill("Acme Corp")
    submit.click()
    expect(form.locator('[data-field-error="api_key"]')).to_have_text("Field required.")
    expect(form.locator('[data-field-error="workspace"]')).to_contain_text("should match pattern")
    expect(key).to_have_attribute("aria-invalid", "true")
    expect(form.get_by_test_id("error-code")).to_have_text("credential_invalid")
    expect(form.get_by_test_id("error-text")).to_contain_text("Some fields are missing")
    shot("02-form-validation-errors")

    # The provider (here: the health check) refusing the key is said in words, with its code.
    key.fill("wrong_key")
    workspace.fill("acme")
    submit.click()
    expect(form.get_by_test_id("error-code")).to_have_text("credential_rejected")
    expect(form.get_by_test_id("error-text")).to_contain_text("The provider refused this credential")
    expect(form.locator('[data-field-error="workspace"]')).to_be_hidden()
    shot("03-form-credential-rejected")

    # Success updates the card: Valid, the account, and buttons named after the card and its account.
    key.fill("crm_live_acme")
    submit.click()
    expect(crm.get_by_test_id("badge")).to_have_text("Valid")
    expect(crm.get_by_test_id("account")).to_have_text("acme")
    expect(page.locator("#toast")).to_contain_text("Demo CRM connected.")
    for name in ("Run Sync on Demo CRM (acme)", "Validate Demo CRM (acme)", "Disconnect Demo CRM (acme)"):
        expect(page.get_by_role("button", name=name, exact=True)).to_be_visible()
    expect(crm.get_by_role("button", name="Reconnect Demo CRM (acme)")).to_have_count(0)  # no flow to run again
    shot("04-connected")

    # A run: what it ingested is on the card (the operation emits one schema, so the total is that schema's).
    page.get_by_role("button", name="Run Sync on Demo CRM (acme)", exact=True).click()
    expect(crm.get_by_test_id("last-run")).to_contain_text("Sync succeeded")
    expect(crm.get_by_test_id("last-run-counts")).to_contain_text("3 asset records ingested · 0 filtered · 0 rejected")
    expect(crm.get_by_test_id("records")).to_have_text("Records stored: asset 3")
    with runtime.db.session() as session:
        stored = session.exec(__import__("sqlmodel").text("select count(*) from asset")).one()
    assert stored[0] == 3
    shot("05-run-succeeded")

    # A run stopped short (stalled): the stable code in small text, the sentence a person reads.
    page.get_by_role("button", name="Run Backfill on Demo CRM (acme)", exact=True).click()
    last = crm.get_by_test_id("last-run")
    expect(last).to_contain_text("Backfill stalled")  # a pagination loop stops the run short: stalled (issue 23)
    expect(last.get_by_test_id("error-text")).to_have_text("The provider's paging went in a loop, so the run stopped. ")
    expect(last.get_by_test_id("error-code")).to_have_text("pagination_loop")
    crm.get_by_test_id("runs").locator("summary").click()
    expect(crm.get_by_test_id("runs").locator("td.err").first).to_contain_text("paging went in a loop")
    shot("06-run-stalled")

    # Every button on the page has a name that says which card it acts on (or is a page-level control).
    page_level = {"Refresh", "Retry", "Sign out", "Cancel", "Disconnect"}  # the last two: the dialog's
    for handle in page.locator("button").element_handles():
        name = handle.get_attribute("aria-label") or handle.inner_text()
        assert name in page_level or "Demo CRM" in name, name
    page.set_viewport_size({"width": 1280, "height": 900})
    snap("07-desktop")
