"""Microsoft Graph errors: ``{"error": {"code", "message"}}``, of which only the status reaches a message."""

from __future__ import annotations

import httpx

from engine import providerkit
from engine.providerkit import retry_after_seconds

GRAPH_URL = "https://graph.microsoft.com"
#: Graph throttling answers carry ``Retry-After``; when one does not, wait this long (Graph's own guidance).
DEFAULT_RETRY_AFTER = 10.0


def raise_for_status(response: httpx.Response) -> None:
    """401 is ``unauthorized``; 429 (and 503 with ``Retry-After``) is ``rate_limited`` with ``retry_after``."""
    providerkit.raise_for_status(response, "Microsoft Graph", is_rate_limit=_is_throttled, retry_after=_retry_after)


def _is_throttled(response: httpx.Response) -> bool:
    return response.status_code == 429 or (response.status_code == 503 and bool(response.headers.get("retry-after")))


def _retry_after(response: httpx.Response) -> float:
    return retry_after_seconds(response.headers) or DEFAULT_RETRY_AFTER


get_json = providerkit.json_getter(raise_for_status)
post_json = providerkit.json_poster(raise_for_status)
