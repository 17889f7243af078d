"""Timings from inside the bench server (``python -m bench webhooks --trace``): where a delivery's latency goes.

The load generator sees one latency per request; this splits it up inside the server process:

- ``request``: from the ASGI call to the answer's last byte, for deliveries (what the server itself adds; the rest
  of wrk's figure is the event loop's queue before the call and the network);
- ``batch``: each group commit (``engine.store.batching.Coalescer``), from start to commit, and its size;
- ``lag``: how late a 1 ms sleep on the server's loop wakes up (the loop's own queue);
- ``gc``: each garbage collection's pause.

``GET /bench-trace`` answers percentiles in ms; ``POST /bench-trace/reset`` starts over. Only the bench server
installs this (it patches the coalescer's batch methods), never the engine.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from typing import Any

from engine.store import batching

_events: dict[str, list[tuple[float, float]]] = {"request": [], "batch": [], "lag": [], "gc": []}
_batch_sizes: list[int] = []


def _percentiles(durations: list[float]) -> dict[str, float]:
    if not durations:
        return {}
    ordered = sorted(durations)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"n": len(ordered), "p50": at(0.5), "p99": at(0.99), "max": at(1.0)}


def summary() -> dict[str, Any]:
    out: dict[str, Any] = {name: _percentiles([d for _, d in events]) for name, events in _events.items()}
    if _batch_sizes:
        out["batch"]["mean_size"] = round(sum(_batch_sizes) / len(_batch_sizes), 1)
    return out


def reset() -> None:
    for events in _events.values():
        events.clear()
    _batch_sizes.clear()


def _patch_coalescer() -> None:
    run, arun = batching.Coalescer._run, batching.Coalescer._arun

    def timed_run(self: Any, items: list[Any]) -> Any:
        started = time.perf_counter()
        try:
            return run(self, items)
        finally:
            _events["batch"].append((started, time.perf_counter() - started))
            _batch_sizes.append(len(items))

    async def timed_arun(self: Any, items: list[Any]) -> Any:
        started = time.perf_counter()
        try:
            return await arun(self, items)
        finally:
            _events["batch"].append((started, time.perf_counter() - started))
            _batch_sizes.append(len(items))

    batching.Coalescer._run = timed_run  # type: ignore[method-assign]
    batching.Coalescer._arun = timed_arun  # type: ignore[method-assign]


def _watch_gc() -> None:
    started = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            _events["gc"].append((started[0], time.perf_counter() - started[0]))

    gc.callbacks.append(callback)


async def _watch_lag() -> None:
    while True:
        started = time.perf_counter()
        await asyncio.sleep(0.001)
        _events["lag"].append((started, time.perf_counter() - started - 0.001))


class Traced:
    """Wraps the app: times deliveries, answers ``/bench-trace``, starts the lag watcher on the first request."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._watcher: asyncio.Task[None] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(_watch_lag())
        if scope["path"].startswith("/bench-trace"):
            if scope["path"].endswith("/reset"):
                reset()
            body = json.dumps(summary()).encode()
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        if not scope["path"].startswith("/v1/webhooks/"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: Any) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                _events["request"].append((started, time.perf_counter() - started))

        await self.app(scope, receive, timed_send)


def install(app: Any) -> Traced:
    _patch_coalescer()
    _watch_gc()
    return Traced(app)
