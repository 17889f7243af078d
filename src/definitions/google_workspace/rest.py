"""Google API conventions shared by every call: error responses and ``pageToken`` pagination.

Google answers errors as ``{"error": {"code", "message", "status", "errors": [{"reason"}]}}``. The message can
echo request data, so it never reaches an error message; only the method, the path and the status do. The
``reason`` / ``status`` codes are read to tell a rate limit from a permission problem, and never repeated.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from engine import ProviderError, providerkit
from engine.egress import parse_json_bounded
from engine.providerkit import retry_after_seconds

#: The largest page the Directory API serves for users (groups and members allow 200; Google caps silently).
MAX_RESULTS = 500
#: Google sends no ``Retry-After`` with most quota errors; its Directory API quotas are counted per minute.
DEFAULT_RETRY_AFTER = 60.0
_RATE_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"}


def raise_for_status(response: httpx.Response) -> None:
    """Turn a Google error response into a ``ProviderError`` with a stable code.

    401 is ``unauthorized`` (an expired or revoked token). A 429, or a 403 whose reason is a rate or quota
    limit, is ``rate_limited`` with ``retry_after`` so the queue defers the run instead of failing it.
    """
    providerkit.raise_for_status(
        response, "Google",
        is_rate_limit=lambda r: r.status_code == 429 or (r.status_code == 403 and _is_rate_limit(r)),
        retry_after=lambda r: _retry_after(r.headers))


def _is_rate_limit(response: httpx.Response) -> bool:
    try:
        error = parse_json_bounded(response.content, limit=64 * 1024).get("error", {})
        reasons = {str(e.get("reason")) for e in error.get("errors") or []}
        return error.get("status") == "RESOURCE_EXHAUSTED" or bool(reasons & _RATE_REASONS)
    except (ProviderError, AttributeError, TypeError):
        return False


def _retry_after(headers: httpx.Headers) -> float:
    return retry_after_seconds(headers) or DEFAULT_RETRY_AFTER


#: ``GET`` one resource and return its JSON body.
get_json = providerkit.json_getter(raise_for_status)


async def paginate(client: httpx.AsyncClient, path: str, *, items: str, **params: Any) -> AsyncIterator[Any]:
    """Every item of a list endpoint, following ``nextPageToken`` until a page has none.

    ``items`` names the list in each page (``users``, ``groups``, ``members``); a page without it is an empty
    page, which is how Google answers an empty list. A token seen before would loop forever: ``ProviderError``.
    """
    seen: set[str] = set()
    token: str | None = None
    while True:
        query = {**params, "maxResults": MAX_RESULTS}
        if token:
            query["pageToken"] = token
        body = await get_json(client, path, **query)
        page = body.get(items, []) if isinstance(body, dict) else None
        if not isinstance(page, list):
            raise ProviderError(f"Google answered an unexpected page shape to GET {path}")
        for item in page:
            yield item
        token = body.get("nextPageToken")
        if not token:
            return
        if token in seen:
            raise ProviderError(f"Google pagination of {path} loops back to a page already read")
        seen.add(token)
