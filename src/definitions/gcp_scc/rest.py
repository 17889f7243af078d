"""Google API conventions for Security Command Center: errors (``definitions.google_api``) read as typed errors.

The canonical ``status`` (``PERMISSION_DENIED``, ``RESOURCE_EXHAUSTED``…) is kept; the message never is.
"""

from __future__ import annotations

from typing import Any

import httpx

from definitions import google_api
from engine.kit.egress import read_json
from engine.kit.providerkit import raise_for_status, retry_after_or

#: Google sends no ``Retry-After`` on most quota errors; its per-minute quotas refill within a minute.
DEFAULT_RETRY_AFTER = 30.0


def _refused(response: httpx.Response) -> bool:
    # The service account lacks a role (403) or its token is no good (401): either way it must be fixed.
    return response.status_code in (401, 403)


async def check(response: httpx.Response, what: str = "Google") -> Any:
    """The JSON body, or the typed error (``RateLimited``, ``TransientProviderError``…) for an error answer."""
    raise_for_status(response, what, typed=True, transient=True, is_unauthorized=_refused,
                     retry_after=retry_after_or(DEFAULT_RETRY_AFTER), detail=google_api.status_of)
    return await read_json(response)
