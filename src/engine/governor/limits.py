"""What a definition declares about a provider's rate limit, and the key a budget is kept under."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, kw_only=True)
class RateLimit:
    """A provider's published limit: ``per_second`` requests on average, bursts of ``burst``.

    ``per`` says what the provider counts against: ``app`` (the operator's OAuth app, across every tenant: Slack,
    Notion), ``account`` (each external account or installation: GitHub's per-installation limit), or ``tenant``
    (each of Tether's tenants). Within one key the budget is shared fairly between the tenants using it.
    """

    per_second: float
    burst: int | None = None
    per: Literal["app", "account", "tenant"] = "app"

    def __post_init__(self) -> None:
        if not (self.per_second > 0 and math.isfinite(self.per_second)):
            raise ValueError("RateLimit.per_second must be a positive, finite number")
        if self.burst is not None and self.burst < 1:
            raise ValueError("RateLimit.burst must be at least 1")

    @property
    def capacity(self) -> float:
        """The bucket's size: the declared burst, else one second's worth (at least one request)."""
        return float(self.burst) if self.burst is not None else max(1.0, self.per_second)


@dataclass(frozen=True)
class BucketKey:
    """Where one budget is kept: ``definition`` and the ``scope`` the provider counts against."""

    definition: str
    scope: str = "app"

    @classmethod
    def for_integration(
        cls, definition: str, limit: RateLimit | None, *, tenant: str, account: str | None
    ) -> BucketKey:
        per = limit.per if limit is not None else "app"
        if per == "account" and account:
            return cls(definition, f"account:{account}")
        if per == "tenant":
            return cls(definition, f"tenant:{tenant}")
        return cls(definition, "app")

    def __str__(self) -> str:
        return f"{self.definition}:{self.scope}"
