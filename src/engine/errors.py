"""Typed errors with stable codes.

Every error Tether raises on purpose carries a stable ``code`` (snake_case, never renamed) and the HTTP status an
API caller sees. Messages are written for humans and never contain secrets or provider error bodies: callers may
log them and return them as they are. The full table lives in ``docs/errors.md``.
"""

from __future__ import annotations

import math
from typing import ClassVar


class TetherError(Exception):
    """Base class: a failure with a stable code and an HTTP status."""

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500
    #: Raised out of a run, whether the run ends ``stalled`` rather than ``failed``: it stopped short of its end
    #: through no fault of its own input (a provider's pagination that ends early or loops, no progress).
    stalls: ClassVar[bool] = False

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code  # type: ignore[misc]
        if status is not None:
            self.status = status  # type: ignore[misc]

    def to_dict(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


class DefinitionError(TetherError):
    """A provider definition breaks a registry rule; raised at registration, never at run time."""

    code = "invalid_definition"

    def __init__(self, definition_id: str, part: str, reason: str, *, rule: str) -> None:
        self.definition_id = definition_id
        self.part = part
        self.reason = reason
        self.rule = rule
        super().__init__(f"{definition_id}: {part}: {reason} [{rule}]")


class ConfigurationError(TetherError):
    """Start-up configuration is missing or wrong (a required secret, a bad URL)."""

    code = "configuration_error"


class NotFoundError(TetherError):
    code = "not_found"
    status = 404


class ValidationFailed(TetherError):
    """Input did not match its schema."""

    code = "invalid_input"
    status = 422


class ProviderNotEnabled(TetherError):
    code = "provider_not_enabled"
    status = 403


class EgressRefused(TetherError):
    """An outbound request was refused by the egress guard before anything was sent."""

    code = "egress_refused"
    status = 502


class ProviderError(TetherError):
    """A provider answered with an error. The provider's body is never part of the message."""

    code = "provider_error"
    status = 502

    def __init__(
        self,
        message: str,
        *,
        provider_status: int | None = None,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.provider_status = provider_status
        # Whatever a definition parsed from a provider header: a wait that is not a finite, non-negative number of
        # seconds (inf, nan, negative) is no wait we can schedule, so the default backoff applies instead.
        self.retry_after = retry_after if retry_after is not None and 0.0 <= retry_after < math.inf else None


class CelError(TetherError):
    """A CEL expression failed to compile or to evaluate."""

    code = "cel_error"
    status = 400
