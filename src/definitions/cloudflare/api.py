"""Cloudflare API conventions: the ``{"success", "errors", "result", "result_info"}`` envelope and its pages.

Every v4 answer is an envelope; ``success: false`` can come with HTTP 200 as well as with 4xx, so the status
alone is not enough. Errors keep Cloudflare's numeric codes (stable, documented) but never its messages, which
can echo request data. Lists page with ``result_info``: ``page``/``total_pages``, or ``cursors.after`` on the
endpoints that use cursors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from engine import ProviderError
from engine.egress import read_json
from engine.providerkit import RateLimited, TransientProviderError, retry_after_seconds

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
    """The envelope's body, or the typed error for an unsuccessful answer."""
    where = f"{response.request.method} {response.request.url.path}"
    status = response.status_code
    try:
        body = await read_json(response)
    except ValueError:
        body = None
    codes = envelope_codes(body)
    if status == 429 or RATE_LIMIT_CODES & set(codes):
        raise RateLimited(f"Cloudflare rate limit reached ({where})",
                          retry_after=retry_after_seconds(response.headers) or DEFAULT_RETRY_AFTER)
    if status in (401, 403) or UNAUTHORIZED_CODES & set(codes):
        raise ProviderError(f"Cloudflare refused the API token ({where}, codes {codes})", provider_status=status,
                            code="unauthorized")
    if status >= 500:
        raise TransientProviderError(f"Cloudflare answered {status} to {where}", provider_status=status)
    if status >= 400 or not isinstance(body, dict) or body.get("success") is False:
        raise ProviderError(f"Cloudflare answered {status} to {where} (codes {codes})", provider_status=status)
    return body


async def get(client: httpx.AsyncClient, path: str, **params: Any) -> Any:
    """``GET`` one envelope and return its ``result``."""
    return (await check(await client.get(path, params=params or None))).get("result")


async def paginate(client: httpx.AsyncClient, path: str, *, per_page: int = 50, **params: Any) -> AsyncIterator[Any]:
    """Every item of a list endpoint, by ``result_info.cursors.after`` when present, else by page number."""
    query: dict[str, Any] = {**params, "per_page": per_page, "page": 1}
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        body = await check(await client.get(path, params=query))
        result = body.get("result")
        if not isinstance(result, list):
            raise ProviderError(f"Cloudflare answered an unexpected page shape to GET {path}")
        for item in result:
            yield item
        info = body.get("result_info") or {}
        after = (info.get("cursors") or {}).get("after")
        if after:
            if after in seen:
                raise ProviderError(f"Cloudflare pagination of {path} repeated a cursor")
            seen.add(after)
            query = {**params, "per_page": per_page, "cursor": after}
            continue
        page, total = info.get("page"), info.get("total_pages")
        if not result or not isinstance(page, int) or not isinstance(total, int) or page >= total:
            return
        query = {**params, "per_page": per_page, "page": page + 1}
    raise ProviderError(f"Cloudflare pagination of {path} stopped after {MAX_PAGES} pages")
