"""A PostgreSQL connection of an event loop's own, for statements the loop runs without a thread hop.

The group commits of the hot paths (``engine.store.batching``) run one small statement per batch. Run in a worker
thread, that statement waits for the GIL each time its round trips return while the event loop is busy, which on a
loaded server stretches a 1 ms insert to 5-15 ms and puts stalls into every answer waiting on it. ``LoopConnection``
keeps one psycopg ``AsyncConnection`` per event loop instead, in autocommit mode, so a single-statement batch is one
round trip awaited by the loop itself.

A connection is opened on first use, used by one caller at a time, and dropped after an error that broke it or a
cancellation (the next use opens a new one). Connections of loops that have closed are closed when another loop
opens one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from sqlalchemy import Engine


class LoopConnection:
    """One autocommit ``psycopg.AsyncConnection`` per event loop to ``engine``'s PostgreSQL database."""

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("LoopConnection needs PostgreSQL")
        args, kwargs = engine.dialect.create_connect_args(engine.url)
        self._args: list[Any] = list(args)
        self._kwargs: dict[str, Any] = dict(kwargs)
        self._open: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Lock, psycopg.AsyncConnection[Any] | None]] = {}

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """This loop's connection, held for the block. An error that breaks it drops it."""
        loop = asyncio.get_running_loop()
        entry = self._open.get(id(loop))
        if entry is None or entry[0] is not loop:
            self._prune()
            entry = self._open[id(loop)] = (loop, asyncio.Lock(), None)
        _, lock, _ = entry
        async with lock:
            connection = self._open[id(loop)][2]
            if connection is None or connection.closed:
                connection = await psycopg.AsyncConnection.connect(*self._args, autocommit=True, **self._kwargs)
                self._open[id(loop)] = (loop, lock, connection)
            try:
                yield connection
            except BaseException as exc:
                # Dropped when broken, and when the block was cancelled: a statement may still be in flight on it.
                if connection.broken or connection.closed or not isinstance(exc, Exception):
                    self._open[id(loop)] = (loop, lock, None)
                    if not connection.closed:
                        connection.pgconn.finish()
                raise

    def _prune(self) -> None:
        for key, (loop, _, connection) in list(self._open.items()):
            if loop.is_closed():
                del self._open[key]
                if connection is not None and not connection.closed:
                    connection.pgconn.finish()  # its loop is gone: close the socket without awaiting

    def close(self) -> None:
        """Close every connection (sockets closed at once; safe from any thread once the loops are idle)."""
        for _, _, connection in self._open.values():
            if connection is not None and not connection.closed:
                connection.pgconn.finish()
        self._open.clear()


class LoopConnections:
    """Up to ``size`` ``LoopConnection``\\ s per event loop: for a loop whose statements may overlap (a worker's
    batched delivery claims and finishes, several messages in flight), so one statement never waits for another's
    round trip and the database can run them on several cores at once. A caller gets an idle one, else the one
    with the fewest callers waiting."""

    def __init__(self, engine: Engine, size: int) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self._members = [LoopConnection(engine) for _ in range(size)]
        self._waiting = [0] * size

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        index = min(range(len(self._members)), key=lambda i: (self._waiting[i], i))
        self._waiting[index] += 1
        try:
            async with self._members[index].connection() as connection:
                yield connection
        finally:
            self._waiting[index] -= 1

    def close(self) -> None:
        for member in self._members:
            member.close()
