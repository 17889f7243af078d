"""A local HTTP/1.1 server that answers slowly: the peer for tests of total deadlines.

httpx's timeouts bound each read, so a provider that sends a little at a time never trips them; these answers
trickle a byte at a time, well under any per-read timeout, to show what a total deadline cuts off.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

TRICKLE_INTERVAL = 0.05  # well under the bound, so no per-read timeout ever fires
TRICKLE_BYTES = 200  # 10 s at that pace: far past the bound


@dataclass(frozen=True)
class SlowAnswer:
    """``head`` after ``delay`` seconds, then ``trickled`` one byte per ``TRICKLE_INTERVAL``."""

    head: bytes
    trickled: bytes = b""
    delay: float = 0.0


class TrickleServer:
    """An asyncio HTTP/1.1 server on 127.0.0.1 (its own loop, in a thread) that answers slowly.

    Records the paths requested, the paths whose answer was sent in full, and the paths whose client hung
    up first (the connection closed by the client, seen as EOF on the socket)."""

    def __init__(self, answers: dict[str, SlowAnswer]) -> None:
        self.answers = answers
        self.requested: list[str] = []
        self.finished: list[str] = []
        self.hung_up: dict[str, threading.Event] = {path: threading.Event() for path in answers}
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(started,), daemon=True)
        self.thread.start()
        assert started.wait(10)

    def _serve(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        started.set()
        self.loop.run_forever()
        self.loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            await reader.readexactly(length)
            path = head.split(b" ")[1].decode()
            self.requested.append(path)
            answer = self.answers[path]
            eof = asyncio.ensure_future(reader.read(1))  # b"" once the client closes the connection
            await asyncio.sleep(answer.delay)
            writer.write(answer.head)
            await writer.drain()
            for byte in answer.trickled:
                await asyncio.sleep(TRICKLE_INTERVAL)
                if eof.done():
                    self.hung_up[path].set()
                    return
                writer.write(bytes([byte]))
                await writer.drain()
            self.finished.append(path)
            await eof
            self.hung_up[path].set()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def _shutdown(self) -> None:
        self.server.close()
        handlers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await self.server.wait_closed()


def http_head(status: str, length: int, *extra: str) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {length}", "Content-Type: application/json", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@contextmanager
def trickle_server(answers: dict[str, SlowAnswer]) -> Iterator[TrickleServer]:
    server = TrickleServer(answers)
    try:
        yield server
    finally:
        server.close()
