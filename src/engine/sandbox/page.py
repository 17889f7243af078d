"""The sandbox's page, ``GET /sandbox/``: its accounts with their API keys, record counts, active grants and webhook
subscriptions, and a button for each control.

Plain HTML and a few lines of script (each button POSTs its control and shows the answer in a status line), from
this server only. Every button's accessible name names its account ("Expire tokens of Acme Corp"), so a screen
reader, or a test, can tell the cards apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from engine.runtime import Runtime
from engine.sandbox import grants
from engine.sandbox.database import sandbox_db
from engine.sandbox.oauth import CLIENT_ID, CLIENT_SECRET, templates
from engine.sandbox.seed import ACCOUNTS, SeedAccount
from engine.sandbox.store import counts
from engine.sandbox.subscriptions import of_account

router = APIRouter(include_in_schema=False)
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
}
SCRIPT = """\
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-control]");
  if (!button) return;
  const status = document.getElementById("status");
  const init = {method: button.dataset.method || "POST", headers: {"content-type": "application/json"}};
  if (button.dataset.body) init.body = button.dataset.body;
  button.disabled = true;
  try {
    const response = await fetch(button.dataset.control, init);
    status.textContent = `${button.getAttribute("aria-label")}: ${response.status} ${await response.text()}`;
    if (response.ok) setTimeout(() => location.reload(), 800);
  } catch (error) {
    status.textContent = `${button.getAttribute("aria-label")}: failed (${error})`;
  } finally {
    button.disabled = false;
  }
});
"""


@dataclass(frozen=True)
class AccountView:
    account: SeedAccount
    counts: dict[str, int]
    grants: int
    webhooks: list[tuple[str, int | None]]


def _views(runtime: Runtime) -> list[AccountView]:
    db = sandbox_db(runtime.db)
    return [
        AccountView(
            a,
            counts(db, a.id),
            grants.active_grants(db, a.id),
            [(w.id, w.last_status) for w in of_account(db, a.id)],
        )
        for a in ACCOUNTS
    ]


@router.get("/")
async def page(request: Request) -> HTMLResponse:
    runtime: Runtime = request.app.state.runtime
    views = await anyio.to_thread.run_sync(_views, runtime)
    html = templates.get_template("page.html").render(
        views=views,
        # Links by path: the page may be opened at another name of this server (localhost for 127.0.0.1), and its
        # script and calls must stay same-origin (the page's Content-Security-Policy allows only 'self').
        base=urlsplit(runtime.settings.public_url).path.rstrip("/") + "/sandbox",
        api_base=runtime.settings.public_url.rstrip("/") + "/sandbox/api/v1",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        open_controls=runtime.settings.embedded_default(),
    )
    return HTMLResponse(html, headers=PAGE_HEADERS)


@router.get("/page.js")
async def script() -> HTMLResponse:
    return HTMLResponse(SCRIPT, media_type="text/javascript", headers={"Cache-Control": "no-cache"})
