"""Google API conventions: ``{"error": {"code", "status", "message"}}`` answers and ``nextPageToken`` pages.

The canonical ``status`` (``PERMISSION_DENIED``, ``RESOURCE_EXHAUSTED``…) is kept; the message never is.
"""

from __future__ import annotations

from typing import Any

import httpx

from engine import ProviderError
from engine.egress import read_json
from engine.providerkit import RateLimited, TransientProviderError, retry_after_seconds

#: Google sends no ``Retry-After`` on most quota errors; its per-minute quotas refill within a minute.
DEFAULT_RETRY_AFTER = 30.0


async def check(response: httpx.Response, what: str = "Google") -> Any:
    """The JSON body, or the typed error for an error answer."""
    status = response.status_code
    where = f"{response.request.method} {response.request.url.path}"
    if status == 429:
        raise RateLimited(f"{what} quota exceeded ({where})",
                          retry_after=retry_after_seconds(response.headers) or DEFAULT_RETRY_AFTER)
    if status in (401, 403):
        raise ProviderError(f"{what} refused the credential ({where}, {await _status(response)})",
                            provider_status=status, code="unauthorized")
    if status >= 500:
        raise TransientProviderError(f"{what} answered {status} to {where}", provider_status=status)
    if status >= 400:
        raise ProviderError(f"{what} answered {status} to {where} ({await _status(response)})",
                            provider_status=status)
    return await read_json(response)


async def _status(response: httpx.Response) -> str:
    try:
        body = await read_json(response)
    except ValueError:
        return "no status"
    error = body.get("error") if isinstance(body, dict) else None
    value = error.get("status") if isinstance(error, dict) else None
    return value if isinstance(value, str) and value.replace("_", "").isalnum() else "no status"
