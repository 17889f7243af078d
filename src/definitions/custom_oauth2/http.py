"""Provider error answers as ``ProviderError`` codes, shared by every data-declared provider.

Provider bodies are never part of a message (they can echo request data): only the method, path and status.
"""

from __future__ import annotations

import httpx

from engine import ProviderError


def raise_for_status(response: httpx.Response, provider: str) -> None:
    """401 is ``unauthorized`` (revoked or expired token); 429 is ``rate_limited`` with ``retry_after`` seconds
    from ``Retry-After`` so the queue defers the run instead of failing it; anything else is ``provider_error``."""
    if response.is_success:
        return
    status = response.status_code
    where = f"{response.request.method} {response.request.url.path}"
    if status == 401:
        raise ProviderError(f"{provider} refused the credential ({where})", provider_status=status,
                            code="unauthorized")
    if status == 429:
        raise ProviderError(f"{provider} rate limit reached ({where})", provider_status=status,
                            retry_after=retry_after(response.headers), code="rate_limited")
    raise ProviderError(f"{provider} answered {status} to {where}", provider_status=status)


def retry_after(headers: httpx.Headers) -> float | None:
    """``Retry-After`` in seconds (only the delta-seconds form; an HTTP date is treated as absent)."""
    value = headers.get("retry-after", "").strip()
    return float(value) if value.isdigit() else None
