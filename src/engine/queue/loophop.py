"""Running an async actor's coroutine on Dramatiq's event-loop thread, with less work per message than Dramatiq's own
``EventLoopThread.run_coroutine`` (issue 22, queue overhead).

Dramatiq hands each message's coroutine to the loop with ``asyncio.run_coroutine_threadsafe`` and waits on the
``concurrent.futures.Future`` it returns, plus a ``threading.Event`` for the cancellation path: two Python-level
condition variables per message, a chained future on each side and one self-pipe write per message to wake the
loop. Here a message costs a bare lock (acquired by the worker thread, released by the task's done callback) and
the loop is woken once per burst of messages, not once per message: worker threads append to a queue, and only the
one that finds no wake-up pending schedules the drain.

The semantics are Dramatiq's: the worker thread waits in slices of the loop thread's ``interrupt_check_ival`` so
that Dramatiq's asynchronously raised ``Interrupt`` (its time limit, a shutdown) reaches it; it then cancels the
task on the loop and waits up to a second for the coroutine's own cleanup before raising.
"""

from __future__ import annotations

import _thread
import asyncio
import threading
from collections import deque
from collections.abc import Coroutine
from typing import Any

from dramatiq.asyncio import EventLoopThread
from dramatiq.threading import Interrupt

from engine.perloop import PerLoop


class _Waiter:
    """One message's coroutine: ``lock`` is held until its task is done (or it was dropped unstarted)."""

    __slots__ = ("cancelled", "coro", "lock", "task")

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self.coro: Coroutine[Any, Any, Any] | None = coro
        self.task: asyncio.Task[Any] | None = None
        self.cancelled = False
        self.lock = _thread.allocate_lock()
        self.lock.acquire()

    def done(self, _task: asyncio.Task[Any]) -> None:
        self.lock.release()


class _Hop:
    """The coroutines waiting for one loop to start them."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pending: deque[_Waiter] = deque()
        self.scheduled = False
        self.guard = threading.Lock()

    def submit(self, waiter: _Waiter) -> None:
        self.pending.append(waiter)
        with self.guard:
            if self.scheduled:
                return  # a drain is already due and will find this one (it clears the flag before popping)
            self.scheduled = True
        self.loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self.guard:
            self.scheduled = False
        while self.pending:
            waiter = self.pending.popleft()
            coro, waiter.coro = waiter.coro, None
            if coro is None:
                continue
            if waiter.cancelled:  # interrupted before it started
                coro.close()
                waiter.lock.release()
                continue
            waiter.task = self.loop.create_task(coro)
            waiter.task.add_done_callback(waiter.done)


#: A ``_Hop`` references its loop, so a ``WeakKeyDictionary`` would never drop it (``engine.perloop``).
_hops: PerLoop[_Hop] = PerLoop()


def _hop(loop: asyncio.AbstractEventLoop) -> _Hop:
    return _hops.setdefault(lambda: _Hop(loop), loop)


def _cancel(waiter: _Waiter) -> None:
    """On the loop: cancel the message's task, or mark it so the drain drops it unstarted."""
    waiter.cancelled = True
    if waiter.task is not None:
        waiter.task.cancel()


def run_coroutine(loop_thread: EventLoopThread, coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` on ``loop_thread``'s loop and return its result (or raise its exception) in the calling thread."""
    loop = loop_thread.loop
    if not loop.is_running():
        coro.close()
        raise RuntimeError("Event loop is not running.")
    waiter = _Waiter(coro)
    interval = loop_thread.interrupt_check_ival
    finished = False
    try:
        _hop(loop).submit(waiter)  # inside the ``try``: an Interrupt right after it still cancels the coroutine
        while not finished:
            finished = waiter.lock.acquire(timeout=interval)
    except Interrupt as exc:
        if finished:
            raise
        # Asynchronously raised in this thread (a time limit, a shutdown): cancel the task and wait for the
        # coroutine's cleanup, as Dramatiq does.
        loop.call_soon_threadsafe(_cancel, waiter)
        if not waiter.lock.acquire(timeout=1.0):
            if waiter.task is None and waiter.coro is not None and waiter not in _hop(loop).pending:
                coro.close()  # interrupted before it was handed over: it never started
                raise
            raise RuntimeError("Timed out while waiting for coroutine.") from exc
        raise
    task = waiter.task
    if task is None:  # dropped unstarted: only after an Interrupt, handled above
        raise RuntimeError("the coroutine was not started")
    try:
        return task.result()
    finally:
        # No reference cycle exception → traceback → this frame → task → exception.
        del task
        waiter.task = None
