"""A rate governor of the test's own, on a clock the test moves (``engine.governor``).

A provider's ``Retry-After`` pauses every caller of its app until it passes. A test that executes a deferred run again
"once its delay is over", as the broker's delayed redelivery would, moves this clock on by the delay instead of
waiting for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from engine.governor import LocalGovernor


@contextmanager
def governor_clock(runtime: Any) -> Iterator[Callable[[float | None], None]]:
    """Swap ``runtime``'s governor for one on a test clock; yields ``advance(seconds)``."""
    now = [0.0]

    def advance(seconds: float | None) -> None:
        now[0] += seconds or 0.0

    runtime.__dict__["governor"] = LocalGovernor(clock=lambda: now[0])  # the cached_property's slot
    try:
        yield advance
    finally:
        del runtime.__dict__["governor"]
