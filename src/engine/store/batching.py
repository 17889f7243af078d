"""Group commit: concurrent callers share one database round trip.

A busy worker claims, finishes and creates runs for many coroutines at once, and a busy webhook endpoint records
many deliveries at once. Each of those is a small statement whose cost is mostly fixed (statement building, a
thread hop, a round trip, a commit), so ``Coalescer`` turns the calls that arrive while one batch is in flight into
the next batch: one call of ``handle(items)`` in a worker thread, one transaction, and every caller gets its own
answer. Nothing waits on a timer: a lone caller goes through at once, and batches only form under load.

``handle`` returns one entry per item, in order: the item's result, or an exception for that item alone. When
``handle`` itself raises and the batch held more than one item, each item is tried again on its own, so one bad
item never fails its neighbours. A plain function runs in a thread of the coalescer's own; a coroutine function is
awaited on the caller's loop (for a driver that speaks asyncio, such as ``engine.store.loopdb``: no thread hop at all).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from engine.perloop import PerLoop

log = logging.getLogger("tether.batching")

T = TypeVar("T")
R = TypeVar("R")

Handler = Callable[[list[T]], Sequence["R | BaseException"]]
AsyncHandler = Callable[[list[T]], Awaitable[Sequence["R | BaseException"]]]


@dataclass
class _LoopState(Generic[T, R]):
    pending: list[tuple[T, asyncio.Future[R]]] = field(default_factory=list)
    drainers: set[asyncio.Task[None]] = field(default_factory=set)


class Coalescer(Generic[T, R]):
    """Batches concurrent ``submit`` calls into calls of ``handle`` (see the module docstring).

    State is kept per event loop, so one coalescer serves a server's loop, a worker's loop and the short-lived
    loops of tests alike.
    """

    def __init__(
        self,
        name: str,
        handle: Handler[T, R] | AsyncHandler[T, R],
        *,
        max_batch: int = 64,
        max_in_flight: int = 1,
    ) -> None:
        if max_batch < 1 or max_in_flight < 1:
            raise ValueError("max_batch and max_in_flight must be at least 1")
        self.name = name
        self.handle = handle
        self._awaited = inspect.iscoroutinefunction(handle)
        self.max_batch = max_batch
        #: Batches handled at the same time on one loop. One maximises the batch size; more let the items that
        #: arrive while a batch waits on its commit start their own instead of waiting for it (callers that each
        #: wait for their answer, such as an API server's dispatches, then pipeline; each batch needs a thread and
        #: a database connection of its own).
        self.max_in_flight = max_in_flight
        #: Per loop, dropped when it closes (``engine.perloop``): a drainer left unfinished references its loop.
        self._states: PerLoop[_LoopState[T, R]] = PerLoop()
        self._threads: ThreadPoolExecutor | None = None
        self._threads_lock = threading.Lock()

    def _executor(self) -> ThreadPoolExecutor:
        # Threads of its own rather than anyio's: anyio scans every task of a loop it did not start (Dramatiq's) on
        # each hop, and a batch per loop in flight needs only a few threads.
        if self._threads is None:
            with self._threads_lock:
                if self._threads is None:
                    self._threads = ThreadPoolExecutor(max_workers=4, thread_name_prefix=f"tether-{self.name}")
        return self._threads

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        state: _LoopState[T, R] = self._states.setdefault(_LoopState, loop)
        future: asyncio.Future[R] = loop.create_future()
        state.pending.append((item, future))
        # ``done()`` rather than the set's size alone: a finished drainer leaves the set only on its done callback.
        if sum(1 for drainer in state.drainers if not drainer.done()) < self.max_in_flight:
            drainer = loop.create_task(self._drain(state), name=f"coalescer:{self.name}")
            state.drainers.add(drainer)
            drainer.add_done_callback(state.drainers.discard)
        # A caller cancelled while waiting cancels only its own future; the drainer skips futures already done.
        return await future

    async def _drain(self, state: _LoopState[T, R]) -> None:
        while state.pending:
            batch, state.pending = state.pending[: self.max_batch], state.pending[self.max_batch :]
            items = [item for item, _ in batch]
            try:
                if self._awaited:
                    results = await self._arun(items)
                else:
                    results = await asyncio.get_running_loop().run_in_executor(self._executor(), self._run, items)
            except BaseException as exc:  # the loop is shutting down: fail everything waiting, not silently
                waiting, state.pending = batch + state.pending, []
                for _, future in waiting:
                    if future.done():
                        continue
                    if isinstance(exc, asyncio.CancelledError):
                        future.cancel()
                    else:
                        future.set_exception(exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))
                raise
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    def _run(self, items: list[T]) -> list[R | BaseException]:
        try:
            results = list(self.handle(items))  # type: ignore[arg-type]
        except Exception as exc:
            if len(items) == 1:
                return [exc]
            self._log_fallback(items, exc)
            return [self._one(item) for item in items]
        return self._checked(items, results)

    def _one(self, item: T) -> R | BaseException:
        try:
            [result] = self.handle([item])  # type: ignore[misc]
        except Exception as exc:
            return exc
        return result

    async def _arun(self, items: list[T]) -> list[R | BaseException]:
        try:
            results = list(await self.handle(items))  # type: ignore[misc]
        except Exception as exc:
            if len(items) == 1:
                return [exc]
            self._log_fallback(items, exc)
            return [await self._aone(item) for item in items]
        return self._checked(items, results)

    async def _aone(self, item: T) -> R | BaseException:
        try:
            [result] = await self.handle([item])  # type: ignore[misc]
        except Exception as exc:
            return exc
        return result

    def _log_fallback(self, items: list[T], exc: Exception) -> None:
        log.info("%s: a batch of %d failed (%s); trying each on its own", self.name, len(items), type(exc).__name__)

    def _checked(self, items: list[T], results: list[R | BaseException]) -> list[R | BaseException]:
        if len(results) != len(items):
            raise RuntimeError(f"{self.name}: handler returned {len(results)} results for {len(items)} items")
        return results
