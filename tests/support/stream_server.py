"""A provider API on 127.0.0.1 that answers each path with the next answer of its script, and records requests.

Answers are fixture files of ``tests/fixtures/streams`` (``{"source", "status", "headers", "body"}``; ``{base}`` in a
header is the server's own origin, for Link headers) or ``(status, headers, body)`` tuples, or ``Slow(answer,
seconds)``: that answer after a wait (a page still in flight when a test interrupts the run). A path with no answer
left is a 500 naming the path, so a test that asks for more pages than it scripted fails visibly.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from support.server import serve

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "streams"


@dataclass(frozen=True)
class Slow:
    answer: str | tuple[int, dict[str, str], Any]
    seconds: float


Answer = str | tuple[int, dict[str, str], Any] | Slow


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    authorization: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class ProviderApi:
    base: str = ""
    script: dict[str, deque[Answer]] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, path: str, *answers: Answer) -> None:
        with self.lock:
            self.script.setdefault(path, deque()).extend(answers)

    def reset(self) -> None:
        with self.lock:
            self.script.clear()
            self.requests.clear()

    def on(self, path: str) -> list[Seen]:
        return [seen for seen in self.requests if seen.path == path]

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.api_route("/{path:path}", methods=["GET", "POST"])
        async def answer(request: Request) -> JSONResponse:
            raw = await request.body()
            body = json.loads(raw) if raw else None
            # The path as sent (percent-encoding kept), so a test sees whether a value could add a segment.
            path = request.scope["raw_path"].decode("ascii")
            with self.lock:
                self.requests.append(
                    Seen(
                        request.method,
                        path,
                        dict(request.query_params),
                        body,
                        request.headers.get("authorization", ""),
                        dict(request.headers),
                    )
                )
                queue = self.script.get(path)
                next_answer = queue.popleft() if queue else None
            if next_answer is None:
                return JSONResponse({"message": f"nothing scripted for {path}"}, status_code=500)
            if isinstance(next_answer, Slow):
                await asyncio.sleep(next_answer.seconds)
                next_answer = next_answer.answer
            if isinstance(next_answer, str):
                record = fixture(next_answer)
                status, headers, payload = record["status"], record["headers"], record["body"]
            else:
                status, headers, payload = next_answer
            headers = {k: v.replace("{base}", self.base) for k, v in headers.items() if k.lower() != "content-type"}
            return JSONResponse(payload, status_code=status, headers=headers)

        return app


@contextmanager
def provider_api(port: int) -> Iterator[ProviderApi]:
    api = ProviderApi()
    with serve(api.app(), port) as base:
        api.base = base
        yield api
