"""Built clients, reused per (integration, slot, credential version) within one event loop.

A rotation or refresh bumps the credential's version, so the next lookup builds a fresh client; the superseded
one is closed. Building is cheap to repeat but not free (connection pools, minted app tokens), hence the cache.

An async client's pool and locks belong to the event loop that first used them, and one process runs several loops
(the API server's, each embedded worker thread's): a client built in the API's loop (registering a webhook at
connect time) and reused by a worker fails with ``RuntimeError``. So each loop gets its own client; a closed loop's
clients are forgotten at the next lookup.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable
from typing import Any


class ClientCache:
    def __init__(self) -> None:
        #: loop → (integration, slot) → (version, client); ``None`` stands for "outside a running loop". Keyed by
        #: loop first so that forgetting closed loops looks at the few loops, not at every cached client.
        self._clients: dict[asyncio.AbstractEventLoop | None, dict[tuple[str, str], tuple[int, Any]]] = {}
        self._lock = threading.Lock()

    def get(self, integration_id: str, slot_id: str, version: int, build: Callable[[], Any]) -> Any:
        key = (integration_id, slot_id)
        with self._lock:
            self._forget_closed_loops()
            clients = self._clients.setdefault(_running_loop(), {})
            held = clients.get(key)
            if held is not None and held[0] == version:
                return held[1]
            client = build()
            clients[key] = (version, client)
        if held is not None:
            _close_later(held[1])
        return client

    def drop(self, integration_id: str) -> None:
        with self._lock:
            closing = [
                clients.pop(key)[1]
                for clients in self._clients.values()
                for key in [k for k in clients if k[0] == integration_id]
            ]
        for client in closing:
            _close_later(client)

    def _forget_closed_loops(self) -> None:
        """Drop the clients of loops that have ended (their pools can never be used again)."""
        for loop in [loop for loop in self._clients if loop is not None and loop.is_closed()]:
            del self._clients[loop]

    def __len__(self) -> int:
        return sum(len(clients) for clients in self._clients.values())


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _close_later(client: Any) -> None:
    """Close a superseded client: awaitable ``aclose`` in the running loop if there is one, else ``close``."""
    aclose = getattr(client, "aclose", None)
    if aclose is not None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            loop.create_task(aclose())
            return
        result = aclose()
        if inspect.iscoroutine(result):
            result.close()  # no loop to run it on; the pool's sockets close when collected
        return
    close = getattr(client, "close", None)
    if callable(close):
        close()
