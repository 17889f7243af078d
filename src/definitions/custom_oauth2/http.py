"""Provider error answers as ``ProviderError`` codes, shared by every data-declared provider.

Provider bodies are never part of a message (they can echo request data): only the method, path and status.
"""

from __future__ import annotations

import httpx

from engine import providerkit
from engine.providerkit import retry_after_seconds


def raise_for_status(response: httpx.Response, provider: str) -> None:
    """401 is ``unauthorized`` (revoked or expired token); 429 is ``rate_limited`` with ``retry_after`` seconds
    from ``Retry-After`` so the queue defers the run instead of failing it; anything else is ``provider_error``."""
    providerkit.raise_for_status(response, provider, retry_after=lambda r: retry_after(r.headers))


def retry_after(headers: httpx.Headers) -> float | None:
    """``Retry-After`` in seconds (only the delta-seconds form; an HTTP date is treated as absent)."""
    return retry_after_seconds(headers)
