"""Slack Web API conventions shared by every call: the ``ok`` envelope, rate limits and cursor pagination.

Slack answers most failures with HTTP 200 and ``{"ok": false, "error": "<code>"}``, so the status alone says
little: every body is checked. Rate limits (HTTP 429 with ``Retry-After``, or ``ratelimited`` in a body) raise
``engine.kit.providerkit.RateLimited``, which the worker defers through the queue; the loop guards of cursor
pagination come from ``engine.kit.providerkit.paginate``. The error code is a short documented token (``invalid_auth``,
``channel_not_found``) and is the only part of a body that may appear in a message, after checking that it
really is such a token; the rest of a body never does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import re2

from engine import ProviderError
from engine.kit.egress import read_json
from engine.kit.providerkit import CursorPages, Page, PageRequest, RateLimited, raise_for_status
from engine.kit.providerkit import items as each_item
from engine.kit.providerkit import paginate as paginate_pages

API_URL = "https://slack.com/api"
#: The page size Slack recommends (it may return fewer); fewer pages means fewer Tier 2 calls.
PAGE_LIMIT = 200
#: Error codes that mean the token no longer works: the integration must be reconnected.
UNAUTHORIZED = frozenset({"not_authed", "invalid_auth", "account_inactive", "token_revoked", "token_expired"})
_ERROR_CODE = re2.compile(r"^[a-z0-9_]{1,64}$")  # RE2: Slack's answer; $ is the end of text


async def call(client: httpx.AsyncClient, method: str, *, form: dict[str, Any] | None = None,
               json: dict[str, Any] | None = None) -> dict[str, Any]:
    """``POST /api/{method}`` (form-encoded arguments, or a JSON body for write methods); returns the body."""
    if json is not None:
        response = await client.post(f"/{method}", json=json)
    else:
        response = await client.post(f"/{method}", data=form or {})
    # HTTP-level failures: 429 is ``RateLimited`` with ``Retry-After`` seconds; 401 is ``unauthorized``.
    raise_for_status(response, "Slack", typed=True)
    body = await read_json(response)
    if not isinstance(body, dict):
        raise ProviderError(f"Slack answered an unexpected shape to {method}")
    raise_for_error(body, method, response.status_code)
    return body


def raise_for_error(body: dict[str, Any], method: str, status: int = 200) -> None:
    """``{"ok": false, "error": …}``: a revoked or invalid token is ``unauthorized``, ``ratelimited`` is
    ``rate_limited``, anything else a plain ``provider_error`` naming Slack's error code."""
    if body.get("ok") is True:
        return
    error = body.get("error")
    code = error if isinstance(error, str) and error.isascii() and _ERROR_CODE.match(error) else "unknown_error"
    if code in UNAUTHORIZED:
        raise ProviderError(f"Slack refused the token: {code} ({method})", provider_status=status,
                            code="unauthorized")
    if code == "ratelimited":
        raise RateLimited(f"Slack rate limit reached ({method})", retry_after=None)
    raise ProviderError(f"Slack answered {code} to {method}", provider_status=status)


async def paginate(client: httpx.AsyncClient, method: str, *, items: str,
                   form: dict[str, Any] | None = None) -> AsyncIterator[Any]:
    """Every item of a cursor-paginated method, following ``response_metadata.next_cursor`` until it is empty.

    ``items`` names the list in each page (``members`` for ``users.list``). Each page goes through ``call`` so
    the ``ok`` envelope is checked; a cursor Slack already handed out raises ``PaginationLoop``.
    """
    style = CursorPages(items_path=items, cursor_path="response_metadata.next_cursor")

    async def fetch(request: PageRequest) -> Page:
        args = {**(form or {}), "limit": request.limit, **({"cursor": request.cursor} if request.cursor else {})}
        return style.read(await call(client, method, form=args))

    pages = paginate_pages(fetch, style=style, limit=PAGE_LIMIT, what=f"Slack pagination of {method}")
    async for item in each_item(pages):
        yield item
