"""GitHub REST conventions shared by every call: error responses, JSON bodies and ``Link`` pagination.

Provider error bodies are never part of an error message (they can echo request data); only the method, the
path and the status are.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from engine import ProviderError, providerkit
from engine.egress import read_json

#: The largest page GitHub serves; fewer pages means fewer requests against the rate limit.
PER_PAGE = 100


def raise_for_status(response: httpx.Response) -> None:
    """Turn a GitHub error response into a ``ProviderError`` with a stable code.

    401 is ``unauthorized`` (a revoked token, an uninstalled app). A 429, or a 403 carrying rate-limit
    headers, is ``rate_limited`` with ``retry_after`` in seconds so the queue can defer the run instead of
    failing it: ``Retry-After`` for secondary limits, ``X-RateLimit-Reset`` (epoch seconds) for the primary.
    """
    providerkit.raise_for_status(response, "GitHub", is_rate_limit=_is_rate_limit,
                                 retry_after=lambda r: _retry_after(r.headers))


def _is_rate_limit(response: httpx.Response) -> bool:
    status = response.status_code
    return status == 429 or (status == 403 and _retry_after(response.headers) is not None)


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds until GitHub accepts requests again, or ``None`` when the response is no rate-limit answer."""
    if headers.get("retry-after") or headers.get("x-ratelimit-remaining") == "0":
        return providerkit.retry_after_seconds(headers)
    return None


#: ``GET`` one resource and return its JSON body.
get_json = providerkit.json_getter(raise_for_status)


async def paginate(
    client: httpx.AsyncClient, path: str, *, items: str | None = None, **params: Any
) -> AsyncIterator[Any]:
    """Every item of a list endpoint, following ``Link: <…>; rel="next"`` until the last page.

    ``items`` names the key holding the list when a page is an object (``/installation/repositories``
    answers ``{"total_count": …, "repositories": [...]}``); plain list pages need none. A next link that
    repeats a page would loop forever and one to another origin would receive our token: both raise
    ``ProviderError``. ``params`` are added to the first page's query (later links carry their own).
    """
    origin = client.base_url.copy_with(raw_path=b"/")
    url = httpx.URL(path)
    query: dict[str, Any] | None = {"per_page": PER_PAGE, **params}
    fetched: set[str] = set()
    while True:
        response = await client.get(url, params=query)
        raise_for_status(response)
        fetched.add(str(response.url))
        body = await read_json(response)
        page = body.get(items) if items and isinstance(body, dict) else body
        if not isinstance(page, list):
            raise ProviderError(f"GitHub answered an unexpected page shape to GET {response.url.path}")
        for item in page:
            yield item
        link = response.links.get("next", {}).get("url")
        if not link:
            return
        url = response.url.join(link)
        if str(url) in fetched:
            raise ProviderError(f"GitHub pagination of {path} loops back to a page already read")
        if url.copy_with(raw_path=b"/") != origin:
            raise ProviderError(f"GitHub pagination of {path} points to another origin")
        query = None  # the next link carries the query, per_page included
