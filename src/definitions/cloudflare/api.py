"""Cloudflare API conventions: the ``{"success", "errors", "result", "result_info"}`` envelope and its pages.

Every v4 answer is an envelope; ``success: false`` can come with HTTP 200 as well as with 4xx, so the status
alone is not enough. Errors keep Cloudflare's numeric codes (stable, documented) but never its messages, which
can echo request data. Lists page with ``result_info``: ``page``/``total_pages``, or ``cursors.after`` on the
endpoints that use cursors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from engine.kit.egress import read_json
from engine.kit.providerkit import CursorPages, Page, PageRequest, items, raise_for_status, retry_after_or
from engine.kit.providerkit import paginate as providerkit_paginate

#: Cloudflare's codes for a missing, invalid, expired or under-privileged token.
UNAUTHORIZED_CODES = frozenset({9103, 9106, 9109, 10000, 10001, 1000})
#: Cloudflare's "please slow down" code (sent with HTTP 429).
RATE_LIMIT_CODES = frozenset({971, 10429})
#: A guard against a broken pagination chain.
MAX_PAGES = 2_000
#: Retry-After is normally sent with a 429; when it is not, Cloudflare's limit window is five minutes.
DEFAULT_RETRY_AFTER = 60.0


def envelope_codes(body: Any) -> list[int]:
    """The numeric codes of ``errors[]`` (messages are left out on purpose)."""
    errors = body.get("errors") if isinstance(body, dict) else None
    return [e["code"] for e in errors or [] if isinstance(e, dict) and isinstance(e.get("code"), int)]


async def check(response: httpx.Response) -> Any:
    """The envelope's body, or the typed error for an unsuccessful answer (HTTP status or envelope codes)."""
    try:
        body = await read_json(response)
    except ValueError:
        body = None
    codes = envelope_codes(body)
    found = set(codes)
    raise_for_status(
        response, "Cloudflare", typed=True, transient=True,
        is_error=lambda r: (r.status_code >= 400 or not isinstance(body, dict) or body.get("success") is False
                            or bool(found & (RATE_LIMIT_CODES | UNAUTHORIZED_CODES))),
        is_rate_limit=lambda r: r.status_code == 429 or bool(found & RATE_LIMIT_CODES),
        is_unauthorized=lambda r: r.status_code in (401, 403) or bool(found & UNAUTHORIZED_CODES),
        retry_after=retry_after_or(DEFAULT_RETRY_AFTER), detail=lambda _: f"codes {codes}",
    )
    return body


async def get(client: httpx.AsyncClient, path: str, **params: Any) -> Any:
    """``GET`` one envelope and return its ``result``."""
    return (await check(await client.get(path, params=params or None))).get("result")


@dataclass
class ResultPages(CursorPages):
    """``result`` items; the next page by ``result_info.cursors.after`` on the endpoints that page by cursor, else
    by ``result_info.page`` / ``total_pages``. The position is the page request's cursor, ``{"cursor": after}`` or
    ``{"page": n}``, so a repeated one is a loop either way."""

    items_path: str = "result"
    cursor_path: str = "result_info.cursors.after"

    def first(self, limit: int, start: Any) -> PageRequest:
        return PageRequest(number=1, cursor={"page": 1}, limit=limit)

    def read(self, body: Any) -> Page:
        page = super().read(body)
        info = body.get("result_info") or {}
        number, total = info.get("page"), info.get("total_pages")
        if page.next:
            page.next = {"cursor": page.next}
        elif page.items and isinstance(number, int) and isinstance(total, int) and number < total:
            page.next = {"page": number + 1}
        return page


async def paginate(client: httpx.AsyncClient, path: str, *, per_page: int = 50, **params: Any) -> AsyncIterator[Any]:
    """Every item of a list endpoint, by ``result_info.cursors.after`` when present, else by page number."""
    style = ResultPages()

    async def fetch(request: PageRequest) -> Page:
        response = await client.get(path, params={**params, "per_page": per_page, **request.cursor})
        return style.read(await check(response))

    pages = providerkit_paginate(fetch, style=style, max_pages=MAX_PAGES, max_seconds=None,
                                 what=f"Cloudflare pagination of {path}")
    async for item in items(pages):
        yield item
