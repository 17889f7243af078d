"""``LocalGovernor``: the budgets of one process (the embedded default, and a deployment without Redis).

The same algorithm as the Redis implementation (``engine.governor.base``), under a lock, on the monotonic clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.governor.base import LEARNED_RATE_TTL, Governor, bucket_rate
from engine.governor.headers import Learned
from engine.governor.limits import BucketKey, RateLimit


@dataclass
class _Bucket:
    tokens: float | None = None  # None: full (a bucket nobody drew from yet)
    stamp: float = 0.0

    def refill(self, now: float, rate: float, capacity: float) -> float:
        tokens = capacity if self.tokens is None else min(capacity, self.tokens + (now - self.stamp) * rate)
        self.tokens, self.stamp = tokens, now
        return tokens


@dataclass
class _Key:
    bucket: _Bucket = field(default_factory=_Bucket)
    tenants: dict[str, _Bucket] = field(default_factory=dict)
    seen: dict[str, float] = field(default_factory=dict)
    paused_until: float = 0.0
    learned_rate: float | None = None
    learned_until: float = 0.0


class LocalGovernor(Governor):
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._keys: dict[BucketKey, _Key] = {}
        self._lock = threading.Lock()

    async def acquire(self, key: BucketKey, limit: RateLimit | None, tenant: str) -> float:
        return self.acquire_sync(key, limit, tenant)

    def acquire_sync(self, key: BucketKey, limit: RateLimit | None, tenant: str) -> float:
        with self._lock:
            now = self._clock()
            state = self._keys.get(key)
            if state is None:
                if limit is None:
                    return 0.0  # nothing declared, nothing learned: not governed
                state = self._keys.setdefault(key, _Key())
            if state.paused_until > now:
                return state.paused_until - now
            learned = state.learned_rate if state.learned_until > now else None
            rate, capacity = bucket_rate(limit, learned)
            if rate is None:
                return 0.0
            state.seen[tenant] = now
            for other, seen in list(state.seen.items()):
                if seen < now - self.active_window:
                    del state.seen[other]
                    state.tenants.pop(other, None)
            active = len(state.seen)
            share, share_capacity = rate / active, max(1.0, capacity / active)
            tokens = state.bucket.refill(now, rate, capacity)
            own = state.tenants.setdefault(tenant, _Bucket())
            own_tokens = own.refill(now, share, share_capacity)
            if tokens >= 1.0 and own_tokens >= 1.0:
                state.bucket.tokens, own.tokens = tokens - 1.0, own_tokens - 1.0
                return 0.0
            return max((1.0 - tokens) / rate, (1.0 - own_tokens) / share, 1e-3)

    async def learn(self, key: BucketKey, learned: Learned) -> None:
        self.learn_sync(key, learned)

    def learn_sync(self, key: BucketKey, learned: Learned) -> None:
        if learned.pause is None and learned.rate is None:
            return
        with self._lock:
            now = self._clock()
            state = self._keys.setdefault(key, _Key())
            if learned.pause is not None:
                state.paused_until = max(state.paused_until, now + learned.pause)
            if learned.rate is not None:
                state.learned_rate, state.learned_until = learned.rate, now + LEARNED_RATE_TTL
