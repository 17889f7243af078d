"""A host app's event receiver: a real HTTP server on 127.0.0.1 that verifies every delivery with the
``standardwebhooks`` library, as a host would, and records each event once by its ``webhook-id``.

The tests steer it: ``status`` is what it answers (503 while "down"), ``stall`` holds every request until cleared
(a receiver that hangs), and ``secrets`` names the secrets it verifies with; ``verified_by`` tells which of them
verified each event (rotation overlap). With ``with_client`` a secret counts only when ``tether_client.verify_event``
verifies the delivery too (the host's own verifier beside the reference library). ``running_receiver(port=…)``
serves it on a given port: leaving the block closes the port (connections refused), entering another with the same
receiver and port brings it back.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from support.server import free_port, serve
from tether_client import EventVerificationError, verify_event


class Receiver:
    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}
        self.status = 200
        self.stall = threading.Event()
        self.lock = threading.Lock()
        #: Every request that arrived, and those that failed verification.
        self.hits = 0
        self.unverified = 0
        #: Each event once, by ``webhook-id``; ``seen`` counts every verified copy (duplicates included).
        self.events: dict[str, dict[str, Any]] = {}
        self.seen: dict[str, int] = {}
        self.verified_by: dict[str, set[str]] = {}
        self.url = ""
        self.with_client = False

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        with self.lock:
            self.hits += 1
        while self.stall.is_set():
            await asyncio.sleep(0.02)
        if self.status != 200:
            return Response(status_code=self.status)
        headers = dict(request.headers)
        names = set()
        for name, secret in self.secrets.items():
            try:
                Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
            if self.with_client:
                try:
                    verify_event(body, headers, secret)
                except EventVerificationError:
                    continue
            names.add(name)
        if not names:
            with self.lock:
                self.unverified += 1
            return Response(status_code=400)
        event_id = headers["webhook-id"]
        with self.lock:
            self.seen[event_id] = self.seen.get(event_id, 0) + 1
            self.events.setdefault(event_id, json.loads(body))
            self.verified_by.setdefault(event_id, set()).update(names)
        return Response(status_code=204)

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.events.values() if e["type"] == event_type]

    def wait_for(self, predicate: Any, *, bound: float = 60.0, what: str = "events") -> None:
        """Poll until ``predicate()`` holds (a bound against hangs, not a timing assertion)."""
        deadline = time.monotonic() + bound
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"the receiver never got the {what}: {sorted(self.types())}")
            time.sleep(0.05)

    def types(self) -> list[str]:
        with self.lock:
            return [e["type"] for e in self.events.values()]


@contextmanager
def running_receiver(receiver: Receiver | None = None, port: int | None = None) -> Iterator[Receiver]:
    receiver = receiver or Receiver()
    app = Starlette(routes=[Route("/hook", receiver.hook, methods=["POST"])])
    with serve(app, port or free_port()) as base:  # type: ignore[arg-type]
        receiver.url = f"{base}/hook"
        yield receiver
