"""The ``Governor`` base class and the algorithm every implementation keeps: a fair token bucket per key.

Per key there is one bucket of the provider's rate (declared by the definition, or learned from the provider's
``RateLimit-Policy``, whichever is stricter) and, inside it, one bucket per tenant that asked within
``active_window`` seconds, each refilled at ``rate / active tenants``. A request goes when both hold a token, so the
provider never sees more than its rate and a tenant's large sync takes only its share while others are asking. A
pause learned from the provider (``Retry-After``, a window with nothing remaining) stops every caller of the key
until it passes. A key with neither a rate nor a pause is not governed (one cheap lookup).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from engine.errors import ProviderError
from engine.governor.headers import Learned
from engine.governor.limits import BucketKey, RateLimit

#: A learned rate is trusted this long after the answer that announced it, then forgotten until announced again.
LEARNED_RATE_TTL = 3600.0


class GovernorDeferred(ProviderError):
    """The shared budget has no room for this call now: the run is deferred by ``retry_after`` seconds through the
    queue (the execution path treats it as a rate limit), and the provider is never called."""

    def __init__(self, key: BucketKey, wait: float) -> None:
        super().__init__(
            f"deferred by the rate governor: the budget of {key} is spent for {wait:.2f}s",
            retry_after=wait,
            code="rate_limited",
        )


class Governor(ABC):
    """Budgets shared by every caller that reaches the same store (the processes of one Redis, or one process)."""

    #: A tenant that asked within this many seconds holds a share of its key's budget.
    active_window: float = 10.0

    @abstractmethod
    async def acquire(self, key: BucketKey, limit: RateLimit | None, tenant: str) -> float:
        """Take a token for one request of ``tenant``: 0.0 when it may go now, else the seconds until it could (no
        token is taken then)."""

    @abstractmethod
    def acquire_sync(self, key: BucketKey, limit: RateLimit | None, tenant: str) -> float:
        """``acquire`` for a sync client (called in a worker thread, so it never waits: the caller defers)."""

    @abstractmethod
    async def learn(self, key: BucketKey, learned: Learned) -> None:
        """Record what an answer taught: a pause for every caller of ``key``, a rate announced by the provider."""

    @abstractmethod
    def learn_sync(self, key: BucketKey, learned: Learned) -> None:
        """``learn`` for a sync client."""

    def close(self) -> None:  # noqa: B027 - an implementation without connections has nothing to close
        """Release connections (the process is stopping)."""


def bucket_rate(limit: RateLimit | None, learned_rate: float | None) -> tuple[float | None, float]:
    """The rate a key's bucket refills at (the stricter of declared and learned; ``None``: not rate-limited) and
    its capacity."""
    declared = limit.per_second if limit is not None else None
    rates = [rate for rate in (declared, learned_rate) if rate is not None and rate > 0]
    if not rates:
        return None, 0.0
    rate = min(rates)
    capacity = limit.capacity if limit is not None else max(1.0, rate)
    return rate, min(capacity, max(1.0, capacity * rate / declared)) if declared else capacity
