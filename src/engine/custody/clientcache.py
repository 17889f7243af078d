"""Built clients, reused per (integration, slot, credential version).

A rotation or refresh bumps the credential's version, so the next lookup builds a fresh client; the superseded
one is closed. Building is cheap to repeat but not free (connection pools, minted app tokens), hence the cache.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable
from typing import Any


class ClientCache:
    def __init__(self) -> None:
        self._clients: dict[tuple[str, str], tuple[int, Any]] = {}
        self._lock = threading.Lock()

    def get(self, integration_id: str, slot_id: str, version: int, build: Callable[[], Any]) -> Any:
        key = (integration_id, slot_id)
        with self._lock:
            held = self._clients.get(key)
            if held is not None and held[0] == version:
                return held[1]
            client = build()
            self._clients[key] = (version, client)
        if held is not None:
            _close_later(held[1])
        return client

    def drop(self, integration_id: str) -> None:
        with self._lock:
            gone = [k for k in self._clients if k[0] == integration_id]
            closing = [self._clients.pop(k)[1] for k in gone]
        for client in closing:
            _close_later(client)

    def __len__(self) -> int:
        return len(self._clients)


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
