"""Okta management API conventions shared by every call: errors, rate limits and ``Link`` pagination.

Okta error bodies (``errorCode``, ``errorSummary``, ``errorCauses``) can echo request data, so they never enter
a message; only the method, the path and the status do. Okta reports its rate limits in ``X-Rate-Limit-Limit``,
``X-Rate-Limit-Remaining`` and ``X-Rate-Limit-Reset`` (epoch seconds): a 429 raises
``engine.providerkit.RateLimited`` with the seconds until that reset, and the worker defers the run.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from engine import ProviderError
from engine.egress import read_json
from engine.inputs import ascii_int
from engine.providerkit import LinkPages, Page, PageRequest, RateLimited, json_getter
from engine.providerkit import paginate as paginate_pages

#: Okta's largest page for users and group members (groups allow more; 200 keeps every list alike).
PAGE_LIMIT = 200


def raise_for_status(response: httpx.Response) -> None:
    """Turn an Okta error response into a ``ProviderError`` with a stable code.

    401 is ``unauthorized`` (a revoked or expired token, a deactivated admin); 429 is ``rate_limited``.
    """
    if response.is_success:
        return
    status = response.status_code
    where = f"{response.request.method} {response.request.url.path}"
    if status == 401:
        raise ProviderError(f"Okta refused the credential ({where})", provider_status=status, code="unauthorized")
    if status == 429:
        raise RateLimited(f"Okta rate limit reached ({where})", retry_after=retry_after(response.headers))
    raise ProviderError(f"Okta answered {status} to {where}", provider_status=status)


def retry_after(headers: httpx.Headers, now: float | None = None) -> float | None:
    """Seconds until ``X-Rate-Limit-Reset`` (epoch seconds), or ``None`` when Okta sent none."""
    reset = ascii_int(headers.get("x-rate-limit-reset", "").strip())  # '²'.isdigit() is true; int('²') raises
    if reset is None:
        return None
    return max(0.0, reset - (time.time() if now is None else now))


#: ``GET`` one resource and return its JSON body.
get_json = json_getter(raise_for_status)


async def paginate(client: httpx.AsyncClient, path: str) -> AsyncIterator[Any]:
    """Every item of a list endpoint, following ``Link: <…>; rel="next"`` until the last page.

    A next link to another origin would receive our token, so it raises ``ProviderError``; a repeated link
    raises ``PaginationLoop`` (from the provider kit).
    """
    origin = client.base_url.copy_with(raw_path=b"/")

    async def fetch(request: PageRequest) -> Page:
        if request.number == 1:
            response = await client.get(path, params={"limit": request.limit})
        else:
            url = httpx.URL(str(request.url))
            if url.copy_with(raw_path=b"/") != origin:
                raise ProviderError(f"Okta pagination of {path} points to another origin")
            response = await client.get(url)  # the next link carries the query, limit and cursor included
        raise_for_status(response)
        body = await read_json(response)
        if not isinstance(body, list):
            raise ProviderError(f"Okta answered an unexpected page shape to GET {response.url.path}")
        link = response.links.get("next", {}).get("url")
        return Page(body, str(response.url.join(link)) if link else None)

    async for page in paginate_pages(fetch, style=LinkPages(url=path), limit=PAGE_LIMIT):
        for item in page.items:
            yield item
