"""Okta management API conventions shared by every call: errors, rate limits and ``Link`` pagination.

Okta error bodies (``errorCode``, ``errorSummary``, ``errorCauses``) can echo request data, so they never enter
a message; only the method, the path and the status do. Okta reports its rate limits in ``X-Rate-Limit-Limit``,
``X-Rate-Limit-Remaining`` and ``X-Rate-Limit-Reset`` (epoch seconds): a 429 raises
``engine.kit.providerkit.RateLimited`` with the seconds until that reset, and the worker defers the run.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import httpx

from engine.kit import providerkit
from engine.kit.inputs import ascii_int

#: Okta's largest page for users and group members (groups allow more; 200 keeps every list alike).
PAGE_LIMIT = 200


def retry_after(headers: httpx.Headers, now: float | None = None) -> float | None:
    """Seconds until ``X-Rate-Limit-Reset`` (epoch seconds), or ``None`` when Okta sent none."""
    reset = ascii_int(headers.get("x-rate-limit-reset", "").strip())  # '²'.isdigit() is true; int('²') raises
    if reset is None:
        return None
    return max(0.0, reset - (time.time() if now is None else now))


#: 401 is ``unauthorized`` (a revoked or expired token, a deactivated admin); 429 is ``RateLimited`` until
#: ``X-Rate-Limit-Reset``.
raise_for_status = partial(providerkit.raise_for_status, provider="Okta", typed=True,
                           retry_after=lambda r: retry_after(r.headers))

#: ``GET`` one resource and return its JSON body.
get_json = providerkit.json_getter(raise_for_status)


async def paginate(client: httpx.AsyncClient, path: str) -> AsyncIterator[Any]:
    """Every item of a list endpoint, following ``Link: <…>; rel="next"`` until the last page (the kit's
    ``LinkPages``).

    A next link to another origin would receive our token, so it raises ``ProviderError``; a repeated link
    raises ``PaginationLoop``.
    """
    pages = providerkit.follow_links(client, path, style=providerkit.LinkPages(), check=raise_for_status,
                                     what=f"Okta pagination of {path}", params={"limit": PAGE_LIMIT})
    async for item in providerkit.items(pages):
        yield item
