"""Microsoft Graph conventions shared by the Graph definitions (``azure_entra_id``, ``microsoft_teams``).

Graph answers errors as ``{"error": {"code", "message", "innerError"}}``; the message can echo request data, so
only the method, the path and the status reach an error message. 401 is ``unauthorized``; 429, and a 503 that
carries ``Retry-After`` (Graph throttles with both), is ``rate_limited`` with ``retry_after`` so the queue defers
the run instead of failing it. Paging and delta links are absolute URLs that carry our bearer token when
followed: ``pages`` follows them on Graph's own origin only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial

import httpx

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


__all__ = ["DEFAULT_RETRY_AFTER", "GRAPH_URL", "get_json", "pages", "post_json", "raise_for_status"]
