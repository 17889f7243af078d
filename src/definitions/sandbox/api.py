"""The sandbox REST API's conventions shared by every call: where it lives, its errors and its cursor pages.

The API is served by Tether itself at ``{public_url}/sandbox/api/v1`` (the client gets ``public_url`` from its
context). Like any provider it can fail: 401 ``invalid_token`` (an expired or revoked token) is ``unauthorized``,
a 429 is the kit's ``RateLimited`` with ``Retry-After`` (the worker defers the run), a 5xx is transient (retried
with backoff). Lists are ``{"data": [...], "next_cursor": "..." | null}``; ``updated_since`` (RFC 3339) narrows a
list to what changed, deleted records included (``"deleted": true``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import httpx

from engine.kit import providerkit

#: Where the API lives under Tether's public URL.
API_PATH = "/sandbox/api/v1"
#: The sandbox's largest page.
PAGE_LIMIT = 100

#: 401 is ``unauthorized``; 429 is ``RateLimited`` for ``Retry-After`` seconds; 5xx is ``provider_unavailable``.
raise_for_status = partial(providerkit.raise_for_status, provider="The sandbox", typed=True, transient=True)

#: ``GET`` one resource and return its JSON body.
get_json = providerkit.json_getter(raise_for_status)

#: ``POST`` a JSON body and return the JSON answer.
post_json = providerkit.json_poster(raise_for_status)


async def paginate(client: httpx.AsyncClient, kind: str, *, updated_since: str | None = None) -> AsyncIterator[Any]:
    """Every record of one list (``users``, ``groups``…), following ``next_cursor`` until it is null (the kit's
    ``CursorPages``; a repeated cursor raises ``PaginationLoop``)."""
    base: dict[str, Any] = {"limit": PAGE_LIMIT}
    if updated_since:
        base["updated_since"] = updated_since

    async def fetch(request: providerkit.PageRequest) -> httpx.Response:
        params = {**base, **({"cursor": request.cursor} if request.cursor else {})}
        response = await client.get(f"/{kind}", params=params)
        raise_for_status(response)
        return response

    pages = providerkit.paginate(fetch, style=providerkit.CursorPages(items_path="data", cursor_path="next_cursor"),
                                 limit=PAGE_LIMIT, what=f"the sandbox's {kind} list")
    async for item in providerkit.items(pages):
        yield item
