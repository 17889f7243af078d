"""Microsoft Graph conventions shared by the Graph definitions (``azure_entra_id``, ``microsoft_teams``).

Graph answers errors as ``{"error": {"code", "message", "innerError"}}``; the message can echo request data, so
only the method, the path and the status reach an error message. 401 is ``unauthorized``; 429, and a 503 that
carries ``Retry-After`` (Graph throttles with both), is ``rate_limited`` with ``retry_after`` so the queue defers
the run instead of failing it. Paging and delta links are absolute URLs that carry our bearer token when
followed: ``pages`` follows them on Graph's own origin only. A delta query (users, groups, channel messages) adds
``@odata.deltaLink`` on its last page, the link to read the next round's changes from: ``DeltaPages`` yields the
items and keeps it, after checking it stays on Graph's origin too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx

from engine import ProviderError
from engine.kit import providerkit

GRAPH_URL = "https://graph.microsoft.com"
#: Graph throttling answers carry ``Retry-After``; when one does not, wait this long (Graph's own guidance).
DEFAULT_RETRY_AFTER = 10.0
#: A guard against a broken ``@odata.nextLink`` chain (a directory of a few million objects fits).
MAX_PAGES = 50_000


def _is_throttled(response: httpx.Response) -> bool:
    return response.status_code == 429 or (response.status_code == 503 and bool(response.headers.get("retry-after")))


_retry_after = providerkit.retry_after_or(DEFAULT_RETRY_AFTER)

raise_for_status = partial(
    providerkit.raise_for_status, provider="Microsoft Graph", is_rate_limit=_is_throttled, retry_after=_retry_after
)
#: ``GET`` one resource (a path, or an absolute Graph URL) and return its JSON body.
get_json = providerkit.json_getter(raise_for_status)
#: ``POST`` a JSON body and return the JSON answer.
post_json = providerkit.json_poster(raise_for_status)


def pages(client: httpx.AsyncClient, url: str) -> AsyncIterator[providerkit.Page]:
    """The pages of a collection (``value`` items), following ``@odata.nextLink`` on Graph's origin."""
    return providerkit.follow_links(
        client, url, style=providerkit.NextLinkPages(items_path="value", next_path="@odata.nextLink"),
        check=raise_for_status, what="Microsoft Graph paging", max_pages=MAX_PAGES, max_seconds=None,
    )


@dataclass
class DeltaPages:
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
                    _check_origin(self.client, str(delta_link))
                self.delta_link = delta_link


def _check_origin(client: httpx.AsyncClient, url: str) -> None:
    # The client's own origin (Graph's, in production): the link is followed with our bearer token.
    parsed, origin = httpx.URL(url), client.base_url
    same = (parsed.scheme, parsed.host, parsed.port) == (origin.scheme, origin.host, origin.port)
    if parsed.is_absolute_url and not same:
        raise ProviderError("Microsoft Graph paging points to another origin")


__all__ = ["DEFAULT_RETRY_AFTER", "GRAPH_URL", "DeltaPages", "get_json", "pages", "post_json", "raise_for_status"]
