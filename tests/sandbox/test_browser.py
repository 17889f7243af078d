"""The sandbox's pages in headless Chromium at 390 px: the consent page (pick an account by its label, Approve → back
to Tether's callback with a code) and the sandbox page (buttons found by accessible names that name their account;
a click runs the control). Screenshots go to ``test-output/sandbox``."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from engine.custody.oauth import new_pkce
from engine.sandbox.oauth import CLIENT_ID
from sandbox.conftest import LiveSandbox
from support.browser import CHROMIUM, CHROMIUM_ARGS, browser_or_skip

SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "sandbox"


@pytest.mark.timeout(120)
def test_consent_and_sandbox_page_at_390px(live: LiveSandbox) -> None:
    sync_playwright = browser_or_skip()
    from playwright.sync_api import expect

    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844})
            page.set_default_timeout(15_000)
            expect.set_options(timeout=15_000)
            _consent(page, live)
            _sandbox_page(page, live, expect)
        finally:
            browser.close()
    assert live.control("globex/reset").status_code == 200


def _fits(page: Any) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def _consent(page: Any, live: LiveSandbox) -> None:
    callback = f"{live.base}/v1/oauth/callback"
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": callback,
        "state": "st-1",
        "code_challenge": new_pkce()[1],
        "code_challenge_method": "S256",
    }
    page.goto(f"{live.sandbox}/oauth/authorize?{urlencode(params)}")
    _fits(page)
    page.screenshot(path=str(SHOTS / "01-consent.png"), full_page=True)
    page.get_by_label("Globex Corporation").check()
    with page.expect_navigation(url=lambda url: url.startswith(callback)):
        page.get_by_role("button", name="Approve access").click()
    query = parse_qs(urlsplit(page.url).query)
    assert query["state"] == ["st-1"] and query["code"][0].startswith("sbx_code_")


def _sandbox_page(page: Any, live: LiveSandbox, expect: Any) -> None:
    page.goto(f"{live.sandbox}/")
    _fits(page)
    page.screenshot(path=str(SHOTS / "02-sandbox-page.png"), full_page=True)
    card = page.get_by_role("region", name="Globex Corporation")
    expect(card).to_contain_text("sbx_key_globex")
    page.get_by_role("button", name="Add a user to Globex Corporation").click()
    expect(page.get_by_role("status")).to_contain_text("Add a user to Globex Corporation: 201")
    page.screenshot(path=str(SHOTS / "03-user-added.png"), full_page=True)
    page.wait_for_load_state("load")
    expect(page.get_by_role("region", name="Globex Corporation").locator('[data-kind="users"]')).to_have_text("10")
    page.get_by_role("button", name="Make the next 3 calls of Globex Corporation answer 429").click()
    expect(page.get_by_role("status")).to_contain_text(": 200")
    assert live.http.get(f"{live.sandbox}/api/v1/me", headers={"X-Api-Key": "sbx_key_globex"}).status_code == 429
