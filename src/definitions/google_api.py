"""Google API error conventions shared by the Google definitions (``google_workspace``, ``google_calendar``,
``gcp_scc``).

Google answers errors as ``{"error": {"code", "message", "status", "errors": [{"reason"}]}}``. The message can
echo request data, so it never reaches an error message. The canonical ``status`` (``PERMISSION_DENIED``,
``RESOURCE_EXHAUSTED``…) and the ``reason`` codes are read to tell a rate limit from a permission problem; the
status, a documented token, may be named in a message.
"""

from __future__ import annotations

from typing import Any

import httpx

from engine import ProviderError
from engine.kit.egress import parse_json_bounded

#: The ``reason`` codes of a 403 that is a rate or quota limit, not a permission problem.
RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"})


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The ``error`` object of an error answer, or ``{}`` when the body is not Google's error shape."""
    try:
        error = parse_json_bounded(response.content, limit=64 * 1024).get("error")
    except (ProviderError, AttributeError, TypeError, httpx.ResponseNotRead):
        return {}
    return error if isinstance(error, dict) else {}


def is_rate_limit(response: httpx.Response) -> bool:
    """A 429, or a 403 whose status or reason is a rate or quota limit."""
    if response.status_code == 429:
        return True
    if response.status_code != 403:
        return False
    error = error_of(response)
    errors = error.get("errors")
    reasons = {str(e.get("reason")) for e in errors if isinstance(e, dict)} if isinstance(errors, list) else set()
    return error.get("status") == "RESOURCE_EXHAUSTED" or bool(reasons & RATE_REASONS)


def status_of(response: httpx.Response) -> str:
    """The canonical status of an error answer (``PERMISSION_DENIED``), or ``no status``."""
    value = error_of(response).get("status")
    return value if isinstance(value, str) and value.isascii() and value.replace("_", "").isalnum() else "no status"
