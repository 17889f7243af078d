"""The browser path of the quickstart against the real sandbox provider, on the page at a phone's width.

Typed-in key (a refused one first, in words), Sync through the in-process worker, the records visible on the card;
then Disconnect, Connect through the sandbox's own consent page, and the account back on the card. Skipped until the
built-in ``sandbox`` definition is in the catalog (branches sandbox-server / sandbox-definition).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.api import create_app
from engine.custody.crypto import generate_master_key
from engine.runtime import Runtime
from engine.settings import Settings
from support.browser import CHROMIUM, CHROMIUM_ARGS, browser_or_skip, shooter
from support.server import free_port, serve

pytest.importorskip("definitions.sandbox", reason="the sandbox definition has not landed on this branch")

PHONE = {"width": 390, "height": 844}


@pytest.mark.timeout(180)
def test_sandbox_key_sync_records_and_consent_in_a_real_browser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shots: Path
) -> None:
    from engine.processes import start_embedded

    sync_playwright = browser_or_skip()
    port = free_port()
    # The embedded default, as scripts/run serves it: every Settings() of this process agrees (the egress guard's
    # own-origin rule for /sandbox/ reads public_url per client).
    env = {
        "TETHER_SECRET_MASTER_KEY": generate_master_key(),
        "TETHER_DATABASE_URL": f"sqlite:///{tmp_path / 'tether.db'}",
        "TETHER_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "TETHER_PORT": str(port),
        "TETHER_STATE_DIR": str(tmp_path),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("TETHER_DEV_LOGIN", "TETHER_SANDBOX", "TETHER_BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    runtime = Runtime.start(Settings(), migrate=True)
    embedded = start_embedded(runtime)
    try:
        with serve(create_app(runtime), port) as base, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                _sandbox_walk(browser.new_page(viewport=PHONE), base, shots)
            finally:
                browser.close()
    finally:
        embedded.stop()
        runtime.close()


def _sandbox_walk(page: Any, base: str, shots: Path) -> None:
    from playwright.sync_api import expect

    page.set_default_timeout(30_000)
    expect.set_options(timeout=30_000)
    snap = shooter(page, shots)

    def shot(name: str, card: Any) -> None:
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], name
        card.screenshot(path=str(shots / f"{name}.png"))

    page.goto(f"{base}/dev/login?next=/integrations")
    page.click("button[type=submit]")
    card = page.get_by_test_id("card-sandbox")
    expect(card.get_by_test_id("badge")).to_have_text("Not connected")
    expect(card.get_by_role("button", name="Connect Sandbox", exact=True)).to_be_visible()
    shot("01-sandbox-not-connected", card)

    # The typed-in key: a wrong one is refused in words, the seeded one connects.
    typed = card.locator("details.typed").first
    if typed.get_attribute("open") is None:
        typed.locator("summary").click()
    key = typed.locator("input[type=password]")
    submit = typed.locator("button[type=submit]")
    key.fill("sbx_key_nobody")
    submit.click()
    expect(typed.get_by_test_id("error-code")).to_have_text("credential_rejected")
    shot("02-sandbox-key-refused", card)
    key.fill("sbx_key_acme")
    submit.click()
    expect(card.get_by_test_id("badge")).to_have_text("Valid")
    name = card.get_attribute("data-name")
    assert name and name.startswith("Sandbox (")

    # Sync (queued: the in-process worker runs it), then the records on the card.
    page.get_by_role("button", name=f"Run Sync on {name}", exact=True).click()
    expect(card.get_by_test_id("last-run")).to_contain_text("Sync succeeded", timeout=60_000)
    records = card.get_by_test_id("records")
    expect(records.locator('[data-schema="directory_account"] strong')).to_be_visible()
    kinds = ("directory_account", "directory_group", "directory_membership", "asset", "finding", "calendar_event")
    counts = {schema: int(records.locator(f'[data-schema="{schema}"] strong').inner_text()) for schema in kinds}
    assert all(n > 0 for n in counts.values()), counts
    shot("03-sandbox-synced", card)

    # Disconnect, then the browser path: the sandbox's consent page, back with the account.
    page.get_by_role("button", name=f"Disconnect {name}", exact=True).click()
    page.get_by_test_id("confirm-disconnect").click()
    expect(card.get_by_test_id("badge")).to_have_text("Not connected")
    card.get_by_role("button", name="Connect Sandbox", exact=True).click()
    page.wait_for_url("**/sandbox/oauth/authorize**")
    snap("04-sandbox-consent")
    page.get_by_role("button", name="Approve access").click()
    page.wait_for_url(f"{base}/integrations?connected=sandbox")
    expect(card.get_by_test_id("badge")).to_have_text("Valid")
    expect(card.get_by_test_id("account")).not_to_have_text("—")
    shot("05-sandbox-oauth-connected", card)
