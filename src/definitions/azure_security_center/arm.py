"""Azure Resource Manager conventions: error answers and ``nextLink`` pagination.

ARM errors carry ``{"error": {"code", "message"}}``; the code is kept, the message never (it can echo resource
names). Throttling is HTTP 429 with ``Retry-After``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import httpx

from engine import ProviderError
from engine.kit import providerkit
from engine.kit.egress import parse_json_bounded, read_json

#: ARM's documented default wait when a 429 carries no ``Retry-After``.
DEFAULT_RETRY_AFTER = 30.0
MAX_PAGES = 5_000


def _refused(response: httpx.Response) -> bool:
    # The service principal's secret is wrong (401) or it lacks the Security Reader role (403).
    return response.status_code in (401, 403)


def _code(response: httpx.Response) -> str:
    """ARM's error code (a documented alphanumeric token), or ``no error code``."""
    try:
        body = parse_json_bounded(response.content, limit=64 * 1024)
    except (ProviderError, httpx.ResponseNotRead):
        return "no error code"
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return str(code) if isinstance(code, str) and code.isascii() and code.isalnum() else "no error code"


#: 429 is ``RateLimited`` (``Retry-After``, else ARM's default wait), 401/403 ``unauthorized``, a 5xx
#: ``TransientProviderError``; ARM's error code is named, its message never.
raise_for_status = partial(providerkit.raise_for_status, provider="Azure", typed=True, transient=True,
                           is_unauthorized=_refused, retry_after=providerkit.retry_after_or(DEFAULT_RETRY_AFTER),
                           detail=_code)


async def check(response: httpx.Response) -> Any:
    """The JSON body, or the typed error for an ARM error answer."""
    raise_for_status(response)
    return await read_json(response)


async def paginate(client: httpx.AsyncClient, path: str, api_version: str) -> AsyncIterator[Any]:
    """Every ``value[]`` item, following ``nextLink`` on ARM's own origin until there is none."""
    pages = providerkit.follow_links(
        client, path, style=providerkit.NextLinkPages(items_path="value", next_path="nextLink", missing_ok=True),
        check=raise_for_status, what=f"Azure pagination of {path}", params={"api-version": api_version},
        max_pages=MAX_PAGES, max_seconds=None,
    )
    async for item in providerkit.items(pages):
        yield item
