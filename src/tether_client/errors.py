"""Typed exceptions for the server's error envelope ``{"error": {"code": ..., "message": ...}}``.

The ``code`` is the stable part (docs/errors.md); the class is chosen by code first and by HTTP status otherwise,
so a code the client does not know yet still lands in the right family.
"""

from __future__ import annotations

from typing import Any

import httpx

from tether_client._models import RunView


class TetherError(Exception):
    """Any error answer of a Tether server: ``code`` (stable), ``status`` (HTTP), ``message`` (for people)."""

    def __init__(
        self, code: str, message: str, status: int, *, details: dict[str, Any] | None = None, run: RunView | None = None
    ) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.status = status
        #: The envelope's other fields (``upgrade_url``, ``missing_scopes``, ``fields``…), when it has any.
        self.details = details or {}
        #: A failed inline run's record, when the error answers ``POST …/operations/{operation}``.
        self.run = run


class InvalidInput(TetherError):
    """400 or 422: the request was refused as it is (``invalid_input``, ``missing_field``, ``invalid_cursor``…)."""


class Unauthenticated(TetherError):
    """401 ``unauthenticated``: no key, an unknown or revoked key, a principal header that does not verify."""


#: The name most HTTP clients use for a 401.
Unauthorized = Unauthenticated


class Forbidden(TetherError):
    """403: the principal may not do this (``forbidden``, ``operation_not_allowed``, ``upgrade_required``…)."""


class NotFound(TetherError):
    """404 ``not_found`` (also what something of another tenant or owner looks like)."""


class Conflict(TetherError):
    """409: the integration's state does not allow it (``integration_not_connected``, ``reconnect_required``…)."""


class RateLimited(TetherError):
    """``rate_limited``: the provider (or Tether) asked to slow down."""


class ProviderFailed(TetherError):
    """502: the provider refused or failed (``provider_error``, ``unauthorized``, ``provider_unavailable``…)."""


class ServerError(TetherError):
    """Any other 5xx (``internal_error``, ``enqueue_failed``…)."""


_BY_CODE: dict[str, type[TetherError]] = {
    "not_found": NotFound,
    "invalid_input": InvalidInput,
    "unauthenticated": Unauthenticated,
    "forbidden": Forbidden,
    "rate_limited": RateLimited,
}
_BY_STATUS: dict[int, type[TetherError]] = {
    400: InvalidInput,
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: InvalidInput,
    429: RateLimited,
    502: ProviderFailed,
}


def error_class(code: str, status: int) -> type[TetherError]:
    if code in _BY_CODE:
        return _BY_CODE[code]
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ServerError if status >= 500 else TetherError


def error_of(response: httpx.Response) -> TetherError:
    """The exception for an error response; a body that is not the envelope keeps the status as its code."""
    try:
        document = response.json()
    except ValueError:
        document = None
    envelope = document.get("error") if isinstance(document, dict) else None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("code"), str):
        code = f"http_{response.status_code}"
        return error_class(code, response.status_code)(code, response.reason_phrase, response.status_code)
    code, message = envelope["code"], str(envelope.get("message", ""))
    details = {k: v for k, v in envelope.items() if k not in ("code", "message")}
    run = RunView.model_validate(document["run"]) if isinstance(document.get("run"), dict) else None
    return error_class(code, response.status_code)(code, message, response.status_code, details=details, run=run)


class ProviderUnauthorized(Exception):
    """Raised by the function given to ``with_integration_access`` when the provider refused the token (401).

    The function may instead return the provider's ``httpx.Response`` with status 401; either way the client asks
    Tether for a fresh token once and calls the function again.
    """
