"""GitHub REST conventions shared by every call: error responses, JSON bodies and ``Link`` pagination.

Provider error bodies are never part of an error message (they can echo request data); only the method, the
path and the status are.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import httpx

from engine.kit import providerkit

#: The largest page GitHub serves; fewer pages means fewer requests against the rate limit.
PER_PAGE = 100


def _is_rate_limit(response: httpx.Response) -> bool:
    status = response.status_code
    return status == 429 or (status == 403 and _retry_after(response.headers) is not None)


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds until GitHub accepts requests again, or ``None`` when the response is no rate-limit answer."""
    if headers.get("retry-after") or headers.get("x-ratelimit-remaining") == "0":
        return providerkit.retry_after_seconds(headers)
    return None


#: 401 is ``unauthorized`` (a revoked token, an uninstalled app). A 429, or a 403 carrying rate-limit headers, is
#: ``rate_limited`` with ``retry_after`` in seconds so the queue can defer the run instead of failing it:
#: ``Retry-After`` for secondary limits, ``X-RateLimit-Reset`` (epoch seconds) for the primary.
raise_for_status = partial(providerkit.raise_for_status, provider="GitHub", is_rate_limit=_is_rate_limit,
                           retry_after=lambda r: _retry_after(r.headers))

#: ``GET`` one resource and return its JSON body.
get_json = providerkit.json_getter(raise_for_status)


async def paginate(
    client: httpx.AsyncClient, path: str, *, items: str | None = None, **params: Any
) -> AsyncIterator[Any]:
    """Every item of a list endpoint, following ``Link: <…>; rel="next"`` until the last page (the kit's
    ``LinkPages``).

    ``items`` names the key holding the list when a page is an object (``/installation/repositories``
    answers ``{"total_count": …, "repositories": [...]}``); plain list pages need none. A next link that
    repeats a page raises ``PaginationLoop``; one to another origin would receive our token and raises
    ``ProviderError``. ``params`` are added to the first page's query (later links carry their own).
    """
    pages = providerkit.follow_links(
        client, path, style=providerkit.LinkPages(items_path=items or ""), check=raise_for_status,
        what=f"GitHub pagination of {path}", params={"per_page": PER_PAGE, **params}, max_seconds=None,
    )
    async for item in providerkit.items(pages):
        yield item
