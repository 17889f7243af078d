"""Google API conventions for the Admin SDK: error responses (``definitions.google_api``) and ``pageToken`` pages.

Provider messages never reach an error message; only the method, the path and the status do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import httpx

from definitions import google_api
from engine.kit import providerkit

#: The largest page the Directory API serves for users (groups and members allow 200; Google caps silently).
MAX_RESULTS = 500
#: Google sends no ``Retry-After`` with most quota errors; its Directory API quotas are counted per minute.
DEFAULT_RETRY_AFTER = 60.0

_retry_after = providerkit.retry_after_or(DEFAULT_RETRY_AFTER)

#: 401 is ``unauthorized`` (an expired or revoked token). A 429, or a 403 whose reason is a rate or quota limit,
#: is ``rate_limited`` with ``retry_after`` so the queue defers the run instead of failing it.
raise_for_status = partial(
    providerkit.raise_for_status, provider="Google", is_rate_limit=google_api.is_rate_limit, retry_after=_retry_after
)

#: ``GET`` one resource and return its JSON body.
get_json = providerkit.json_getter(raise_for_status)


async def paginate(client: httpx.AsyncClient, path: str, *, items: str, **params: Any) -> AsyncIterator[Any]:
    """Every item of a list endpoint, following ``nextPageToken`` until a page has none.

    ``items`` names the list in each page (``users``, ``groups``, ``members``); a page without it is an empty
    page, which is how Google answers an empty list. A token seen before raises ``PaginationLoop``.
    """

    async def fetch(request: providerkit.PageRequest) -> httpx.Response:
        token = {"pageToken": request.cursor} if request.cursor else {}
        response = await client.get(path, params={**params, "maxResults": request.limit, **token})
        raise_for_status(response)
        return response

    style = providerkit.CursorPages(items_path=items, cursor_path="nextPageToken", missing_ok=True)
    pages = providerkit.paginate(fetch, style=style, limit=MAX_RESULTS, max_seconds=None,
                                 what=f"Google pagination of {path}")
    async for item in providerkit.items(pages):
        yield item
