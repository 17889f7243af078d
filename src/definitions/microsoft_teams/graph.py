"""Microsoft Graph errors: ``{"error": {"code", "message"}}``, of which only the status reaches a message."""

from __future__ import annotations

from typing import Any

import httpx

from engine import ProviderError
from engine.egress import read_json

GRAPH_URL = "https://graph.microsoft.com"
#: Graph throttling answers carry ``Retry-After``; when one does not, wait this long (Graph's own guidance).
DEFAULT_RETRY_AFTER = 10.0


def raise_for_status(response: httpx.Response) -> None:
    """401 is ``unauthorized``; 429 (and 503 with ``Retry-After``) is ``rate_limited`` with ``retry_after``."""
    if response.is_success:
        return
    status = response.status_code
    where = f"{response.request.method} {response.request.url.path}"
    if status == 401:
        raise ProviderError(f"Microsoft Graph refused the credential ({where})", provider_status=status,
                            code="unauthorized")
    retry_after = response.headers.get("retry-after", "")
    if status == 429 or (status == 503 and retry_after):
        raise ProviderError(f"Microsoft Graph rate limit reached ({where})", provider_status=status,
                            retry_after=float(retry_after) if retry_after.isdigit() else DEFAULT_RETRY_AFTER,
                            code="rate_limited")
    raise ProviderError(f"Microsoft Graph answered {status} to {where}", provider_status=status)


async def get_json(client: httpx.AsyncClient, path: str, **params: Any) -> Any:
    response = await client.get(path, params=params or None)
    raise_for_status(response)
    return await read_json(response)


async def post_json(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> Any:
    response = await client.post(path, json=body)
    raise_for_status(response)
    return await read_json(response)
