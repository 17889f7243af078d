"""State kept per event loop, dropped once its loop has closed.

A server, a worker and the short-lived loops of tests each run their own event loop, so caches of loop-bound
objects (locks, semaphores, clients with open sockets, connections, background tasks) are kept per loop. Such a
value nearly always references its loop (a task's or a future's ``_loop``, a lock's after it was first waited on,
a client's transports), so a ``weakref.WeakKeyDictionary`` keyed by the loop never drops it: the dictionary holds
the value, the value holds the loop, and the loop with everything reachable from it lives as long as the process.
A Dramatiq worker restarted in a process, or a test suite, then leaks one loop (and its connections) per loop run.

``PerLoop`` keys by the loop's identity and a weak reference to it, and drops the entries of loops that have closed
whenever an entry is made for a new loop (loops are few, so the scan is cheap), handing each dropped value to
``on_drop`` (to close a socket that can no longer be awaited). An entry whose loop was collected without being
closed is dropped by the weak reference's callback. At most the loops closed since the last new loop started are
held, never a growing number.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

V = TypeVar("V")


class PerLoop(Generic[V]):
    """A mapping from a live event loop to a value of its own (see the module docstring). Thread-safe."""

    def __init__(self, on_drop: Callable[[V], None] | None = None) -> None:
        self._on_drop = on_drop
        self._entries: dict[int, tuple[weakref.ref[asyncio.AbstractEventLoop], V]] = {}
        self._lock = threading.Lock()

    def get(self, loop: asyncio.AbstractEventLoop | None = None) -> V | None:
        """``loop``'s value (default: the running loop's), or ``None``."""
        loop = loop or asyncio.get_running_loop()
        entry = self._entries.get(id(loop))
        if entry is None or entry[0]() is not loop:
            return None
        return entry[1]

    def setdefault(self, factory: Callable[[], V], loop: asyncio.AbstractEventLoop | None = None) -> V:
        """``loop``'s value, made by ``factory`` on first use (default: the running loop's)."""
        loop = loop or asyncio.get_running_loop()
        found = self.get(loop)
        if found is not None:
            return found
        dropped: list[V] = []
        with self._lock:
            entry = self._entries.get(id(loop))
            if entry is not None and entry[0]() is loop:
                return entry[1]
            dropped = self._take_closed()
            value = factory()
            key = id(loop)
            # The callback drops the entry if the loop is collected without being closed (the key is then free).
            ref = weakref.ref(loop, lambda gone, k=key: self._forget(k, gone))
            self._entries[key] = (ref, value)
        self._drop(dropped)
        return value

    def set(self, value: V, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Replace ``loop``'s value (default: the running loop's); the old one is not handed to ``on_drop``."""
        loop = loop or asyncio.get_running_loop()
        with self._lock:
            dropped = self._take_closed()
            key = id(loop)
            entry = self._entries.get(key)
            ref = entry[0] if entry is not None and entry[0]() is loop else None
            if ref is None:
                ref = weakref.ref(loop, lambda gone, k=key: self._forget(k, gone))
            self._entries[key] = (ref, value)
        self._drop(dropped)

    def prune(self) -> None:
        """Drop the entries of closed loops now."""
        with self._lock:
            dropped = self._take_closed()
        self._drop(dropped)

    def clear(self) -> None:
        """Drop every entry, handing each value to ``on_drop``."""
        with self._lock:
            dropped = [value for _, value in self._entries.values()]
            self._entries.clear()
        self._drop(dropped)

    def values(self) -> Iterator[V]:
        return iter([value for _, value in list(self._entries.values())])

    def __len__(self) -> int:
        return len(self._entries)

    def _take_closed(self) -> list[V]:
        """Under ``_lock``: remove the entries of closed (or collected) loops and return their values."""
        dropped = []
        for key, (ref, value) in list(self._entries.items()):
            loop = ref()
            if loop is None or loop.is_closed():
                del self._entries[key]
                dropped.append(value)
        return dropped

    def _forget(self, key: int, gone: weakref.ref[asyncio.AbstractEventLoop]) -> None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] is not gone:
                return
            del self._entries[key]
        self._drop([entry[1]])

    def _drop(self, values: list[V]) -> None:
        if self._on_drop is None:
            return
        for value in values:
            self._on_drop(value)
