"""Microsoft Graph for Entra ID: delta-query paging. Errors, rate limits and ``@odata.nextLink`` paging are Graph's
conventions shared with Teams (``definitions.microsoft_graph``); a delta query adds ``@odata.deltaLink`` on its last
page, the link to read the next round's changes from. It is followed with our token too, so it must stay on Graph's
origin.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from definitions.microsoft_graph import pages
from engine import ProviderError


@dataclass
class Pages:
    """The items of a paged Graph collection; after the last page, ``delta_link`` holds the round's delta link
    (delta queries only)."""

    client: httpx.AsyncClient
    url: str
    delta_link: str | None = None

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        async for page in pages(self.client, self.url):
            for item in page.items:
                yield item
            if page.next is None:
                delta_link = page.raw.get("@odata.deltaLink") if isinstance(page.raw, dict) else None
                if delta_link is not None:
                    _check_origin(str(delta_link))
                self.delta_link = delta_link


def _check_origin(url: str) -> None:
    parsed = httpx.URL(url)
    if parsed.is_absolute_url and (parsed.scheme, parsed.host) != ("https", "graph.microsoft.com"):
        raise ProviderError("Microsoft Graph paging points to another origin")
