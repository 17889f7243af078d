"""Headless Debian Chromium for the page's browser tests: where it is, how it starts, and where screenshots go."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("TETHER_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: The last set of each browser test's screenshots, kept for a person to look at (``.cache`` is git-ignored).
KEPT_SHOTS = Path(__file__).resolve().parents[2] / ".cache" / "screenshots" / "page"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def browser_or_skip() -> Any:
    """``sync_playwright``; skips without Chromium or playwright, except under CI, where that is a failure."""
    reasons = []
    if not CHROMIUM.exists():
        reasons.append(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
        reasons.append("the Python playwright package is not installed")
    if reasons:
        message = "headless Chromium is not available: " + "; ".join(reasons)
        if IN_CI:
            pytest.fail(message + " (CI=true: the browser test must run)", pytrace=False)
        pytest.skip(message)
    return sync_playwright


def shooter(page: Any, folder: Path) -> Callable[[str], None]:
    """``shot(name)``: a full-page screenshot ``name.png`` in ``folder``."""

    def shot(name: str) -> None:
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)

    return shot
