"""Progress of the run being executed, and the watchdog that ends a run which makes none for its stall window.

A run that hangs (a provider that accepts the connection and never answers within the egress deadline's retries,
an operation awaiting something that never comes) would otherwise hold its worker slot until its time limit and,
for an operation that swallows the error, could even end ``succeeded``. Progress is what a run does for its
caller: a provider answer received (so every page fetched; ``engine.kit.egress`` notes it), a payload or a
checkpoint handed to the executor, or an explicit ``OperationContext.progress()`` from an operation doing long work
of its own. ``note()`` finds the run's watchdog through a context variable, so the kit's code marks progress
without being handed anything, and a thread started through ``anyio.to_thread`` (which copies the context) counts
too.

One watchdog per run costs one timer handle, re-armed at most once per window: a mark is a single float store, so
an ingest run marking every payload pays nothing measurable. When the window passes without a mark, the watchdog
cancels the run's task and says so (``fired``); the executor turns that cancellation into ``no_progress``, retried
like a transient failure while retries remain, else the run ends ``stalled`` (docs/decisions.md, issue 23).
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable

_CURRENT: contextvars.ContextVar[Watchdog | None] = contextvars.ContextVar("tether_run_progress", default=None)


def note() -> None:
    """Mark progress of the run executing in this context (a no-op outside a run)."""
    watchdog = _CURRENT.get()
    if watchdog is not None:
        watchdog.last = time.monotonic()


class Watchdog:
    """Cancels ``task`` once ``window`` seconds pass without ``note()`` in its context; ``fired`` says it did.

    Used as a context manager around the run's work: entering arms the timer and makes it the context's watchdog,
    leaving disarms it (whatever the outcome).
    """

    def __init__(self, task: asyncio.Task[object], window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.task = task
        self.window = window
        self.clock = clock
        self.last = clock()
        self.fired = False
        self._handle: asyncio.TimerHandle | None = None
        self._token: contextvars.Token[Watchdog | None] | None = None

    def __enter__(self) -> Watchdog:
        self._token = _CURRENT.set(self)
        self._arm(self.window)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._token is not None:
            _CURRENT.reset(self._token)
            self._token = None

    def idle(self) -> float:
        """Seconds since the last mark."""
        return self.clock() - self.last

    def _arm(self, delay: float) -> None:
        self._handle = self.task.get_loop().call_later(delay, self._check)

    def _check(self) -> None:
        """The timer: fire when the window passed without a mark, else wait for what is left of it."""
        self._handle = None
        idle = self.idle()
        if idle < self.window:
            self._arm(self.window - idle)
            return
        if not self.task.done():
            self.fired = True
            self.task.cancel()


__all__ = ["Watchdog", "note"]
