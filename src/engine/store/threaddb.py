"""A PostgreSQL connection of a thread's own, in autocommit, for the dispatcher's run creation (issue 22).

``runstore.create_runs`` is a group commit: the runs of concurrent dispatches are written together, in a thread of
its coalescer's, while every dispatcher waits for the batch. Through the SQLAlchemy pool each batch paid five
round trips (the checkout's pre-ping, ``BEGIN``, the integrations' ``SELECT``, the ``INSERT``, ``COMMIT``), and on a
loaded machine every round trip is also a wait for the GIL and for a core in the batch's thread. With a connection
kept by the thread in autocommit it pays two: the ``SELECT``, and the ``INSERT``, which commits on its own (one
statement is atomic). Measured against the pool path in paired rounds (``bench queue``'s dispatcher, 16 callers,
loaded 2-core VM): see docs/benchmarks.md.

A connection is opened on a thread's first use and dropped when it broke (the next use opens a new one); every one
still open is closed by ``close`` (``Database.dispose``).
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import psycopg
from sqlalchemy import Engine


class ThreadConnection:
    """One autocommit ``psycopg.Connection`` per thread to ``engine``'s PostgreSQL database."""

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("ThreadConnection needs PostgreSQL")
        args, kwargs = engine.dialect.create_connect_args(engine.url)
        self._args: list[Any] = list(args)
        self._kwargs: dict[str, Any] = dict(kwargs)
        self._local = threading.local()
        self._opened: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """This thread's connection, for the block. A statement that fails leaves it usable (autocommit: no
        transaction to abort); one that broke it drops it."""
        connection: psycopg.Connection[Any] | None = getattr(self._local, "connection", None)
        if connection is None or connection.closed:
            connection = psycopg.connect(*self._args, autocommit=True, **self._kwargs)
            self._local.connection = connection
            with self._lock:
                self._opened.add(connection)
        try:
            yield connection
        except BaseException:
            if connection.broken or connection.closed:
                self._local.connection = None
                connection.close()
            raise

    def close(self) -> None:
        """Close every connection still open (from any thread, once they are idle)."""
        with self._lock:
            opened = list(self._opened)
            self._opened.clear()
        for connection in opened:
            connection.close()
