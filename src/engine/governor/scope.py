"""The budget a running operation's provider calls are charged to, and the two hooks the egress client calls.

The execution path opens ``governed(...)`` around one run; every request an egress client sends inside it asks
``admit`` first and reports its answer to ``observe``. A context variable carries the scope, as it carries the
egress deadline, so a definition's own clients are governed without passing anything through them.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
from redis import RedisError

from engine.errors import TetherError
from engine.governor.base import Governor, GovernorDeferred
from engine.governor.headers import learn
from engine.governor.limits import BucketKey, RateLimit
from engine.observability import metrics


class GovernorUnavailable(TetherError):
    """The governor's store (Redis) could not be reached: the run is retried with backoff, the provider not called."""

    code = "governor_unavailable"
    status = 503
    retryable = True


@dataclass(frozen=True)
class Scope:
    governor: Governor
    key: BucketKey
    limit: RateLimit | None
    tenant: str
    #: Longest a request waits on the event loop for a token before its run is deferred through the queue instead.
    max_wait: float


_SCOPE: contextvars.ContextVar[Scope | None] = contextvars.ContextVar("tether_governor_scope", default=None)


@contextmanager
def governed(
    governor: Governor, key: BucketKey, limit: RateLimit | None, *, tenant: str, max_wait: float = 1.0
) -> Iterator[Scope]:
    scope = Scope(governor, key, limit, tenant, max_wait)
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        _SCOPE.reset(token)


async def admit() -> None:
    """Take a token for the request about to be sent, waiting on the event loop up to ``max_wait`` in total;
    ``GovernorDeferred`` when the budget has no room for longer than that."""
    scope = _SCOPE.get()
    if scope is None:
        return
    give_up = time.monotonic() + scope.max_wait
    while True:
        try:
            wait = await scope.governor.acquire(scope.key, scope.limit, scope.tenant)
        except RedisError:
            raise GovernorUnavailable("the rate governor's store is unreachable") from None
        if wait <= 0:
            return
        if time.monotonic() + wait > give_up:
            metrics.governor_deferred()
            raise GovernorDeferred(scope.key, wait)
        await asyncio.sleep(wait)


def admit_sync() -> None:
    """``admit`` for a sync client: it runs in a worker thread, which never sleeps on a budget, so any wait
    defers the run."""
    scope = _SCOPE.get()
    if scope is None:
        return
    try:
        wait = scope.governor.acquire_sync(scope.key, scope.limit, scope.tenant)
    except RedisError:
        raise GovernorUnavailable("the rate governor's store is unreachable") from None
    if wait > 0:
        metrics.governor_deferred()
        raise GovernorDeferred(scope.key, wait)


async def observe(response: httpx.Response) -> None:
    """Teach the budget what the provider's answer says about its limit."""
    scope = _SCOPE.get()
    if scope is None:
        return
    learned = learn(response.status_code, response.headers)
    try:
        await scope.governor.learn(scope.key, learned)
    except RedisError:
        raise GovernorUnavailable("the rate governor's store is unreachable") from None


def observe_sync(response: httpx.Response) -> None:
    scope = _SCOPE.get()
    if scope is None:
        return
    try:
        scope.governor.learn_sync(scope.key, learn(response.status_code, response.headers))
    except RedisError:
        raise GovernorUnavailable("the rate governor's store is unreachable") from None
