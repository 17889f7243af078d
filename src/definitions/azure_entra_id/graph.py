"""Microsoft Graph conventions shared by every call: error responses and ``@odata.nextLink`` paging.

Graph answers errors as ``{"error": {"code", "message", "innerError"}}``; the message can echo request data, so
only the method, the path and the status reach an error message. Paging and delta links are absolute URLs that
carry our bearer token when followed, so they must stay on Graph's origin.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from engine import ProviderError, providerkit
from engine.providerkit import retry_after_seconds

GRAPH_URL = "https://graph.microsoft.com"
#: Graph throttling answers carry ``Retry-After``; when one does not, wait this long (Graph's own guidance).
DEFAULT_RETRY_AFTER = 10.0


def raise_for_status(response: httpx.Response) -> None:
    """Turn a Graph error response into a ``ProviderError`` with a stable code.

    401 is ``unauthorized``. 429, and a 503 that carries ``Retry-After`` (Graph throttles with both), is
    ``rate_limited`` with ``retry_after`` so the queue defers the run instead of failing it.
    """
    providerkit.raise_for_status(response, "Microsoft Graph", is_rate_limit=_is_throttled, retry_after=_retry_after)


def _is_throttled(response: httpx.Response) -> bool:
    return response.status_code == 429 or (response.status_code == 503 and bool(response.headers.get("retry-after")))


def _retry_after(response: httpx.Response) -> float:
    return retry_after_seconds(response.headers) or DEFAULT_RETRY_AFTER


#: ``GET`` one resource and return its JSON body.
get_json = providerkit.json_getter(raise_for_status)


@dataclass
class Pages:
    """The items of a paged Graph collection; after the last page, ``delta_link`` holds the round's delta link
    (delta queries only)."""

    client: httpx.AsyncClient
    url: str
    delta_link: str | None = None

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        seen: set[str] = set()
        url = self.url
        while True:
            _check_origin(url)
            seen.add(url)
            body = await get_json(self.client, url)
            page = body.get("value") if isinstance(body, dict) else None
            if not isinstance(page, list):
                raise ProviderError("Microsoft Graph answered an unexpected page shape")
            for item in page:
                yield item
            next_link = body.get("@odata.nextLink")
            if not next_link:
                self.delta_link = body.get("@odata.deltaLink")
                if self.delta_link is not None:
                    _check_origin(self.delta_link)
                return
            if next_link in seen:
                raise ProviderError("Microsoft Graph paging loops back to a page already read")
            url = next_link


def _check_origin(url: str) -> None:
    parsed = httpx.URL(url)
    if parsed.is_absolute_url and (parsed.scheme, parsed.host) != ("https", "graph.microsoft.com"):
        raise ProviderError("Microsoft Graph paging points to another origin")
