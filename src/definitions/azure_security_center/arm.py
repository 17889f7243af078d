"""Azure Resource Manager conventions: error answers and ``nextLink`` pagination.

ARM errors carry ``{"error": {"code", "message"}}``; the code is kept, the message never (it can echo resource
names). Throttling is HTTP 429 with ``Retry-After``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from engine import ProviderError
from engine.egress import read_json
from engine.providerkit import RateLimited, TransientProviderError, retry_after_seconds

#: ARM's documented default wait when a 429 carries no ``Retry-After``.
DEFAULT_RETRY_AFTER = 30.0
MAX_PAGES = 5_000


async def check(response: httpx.Response) -> Any:
    """The JSON body, or the typed error for an ARM error answer."""
    status = response.status_code
    where = f"{response.request.method} {response.request.url.path}"
    if status == 429:
        raise RateLimited(f"Azure Resource Manager is throttling requests ({where})",
                          retry_after=retry_after_seconds(response.headers) or DEFAULT_RETRY_AFTER)
    if status in (401, 403):
        raise ProviderError(f"Azure refused the service principal ({where}, {await _code(response)})",
                            provider_status=status, code="unauthorized")
    if status >= 500:
        raise TransientProviderError(f"Azure answered {status} to {where}", provider_status=status)
    if status >= 400:
        raise ProviderError(f"Azure answered {status} to {where} ({await _code(response)})", provider_status=status)
    return await read_json(response)


async def paginate(client: httpx.AsyncClient, path: str, api_version: str) -> AsyncIterator[Any]:
    """Every ``value[]`` item, following ``nextLink`` on ARM's own origin until there is none."""
    origin = client.base_url.copy_with(raw_path=b"/")
    url: httpx.URL | str = path
    params: dict[str, str] | None = {"api-version": api_version}
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        body = await check(await client.get(url, params=params))
        for item in body.get("value") or []:
            yield item
        link = body.get("nextLink")
        if not link:
            return
        url = httpx.URL(link)
        if url.copy_with(raw_path=b"/") != origin:
            raise ProviderError(f"Azure pagination of {path} points to another origin")
        if str(url) in seen:
            raise ProviderError(f"Azure pagination of {path} repeated a page")
        seen.add(str(url))
        params = None  # nextLink carries api-version and the skip token
    raise ProviderError(f"Azure pagination of {path} stopped after {MAX_PAGES} pages")


async def _code(response: httpx.Response) -> str:
    try:
        body = await read_json(response)
    except ValueError:
        return "no error code"
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return str(code) if isinstance(code, str) and code.isalnum() else "no error code"
