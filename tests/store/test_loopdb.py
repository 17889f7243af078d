"""``engine.store.loopdb.LoopConnection``: one autocommit connection per event loop, on the real PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from engine.store.database import Database
from engine.store.loopdb import LoopConnection


async def backend_pid(loop_connection: Any) -> int:
    async with loop_connection.connection() as connection:
        cursor = await connection.execute("SELECT pg_backend_pid()")
        row = await cursor.fetchone()
        assert row is not None
        return int(row[0])


def terminate(db: Database, pid: int) -> None:
    with db.engine.connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


def test_one_connection_per_loop_reused_within_it(postgres_database: Database) -> None:
    shared = postgres_database.loop_connection

    async def twice() -> tuple[int, int]:
        return await backend_pid(shared), await backend_pid(shared)

    first, again = asyncio.run(twice())
    assert first == again
    other, _ = asyncio.run(twice())  # a new loop: a connection of its own; the closed loop's one is closed
    assert other != first
    assert [c for _, _, c in shared._open.values() if c is not None and not c.closed] != []
    assert len(shared._open) == 1


async def test_statements_commit_on_their_own(postgres_database: Database) -> None:
    async with postgres_database.loop_connection.connection() as connection:
        assert connection.autocommit
        await connection.execute("CREATE TABLE loopdb_probe (n int)")
        await connection.execute("INSERT INTO loopdb_probe VALUES (1)")
    with postgres_database.engine.connect() as other:  # another connection sees it: committed
        assert other.execute(text("SELECT n FROM loopdb_probe")).scalar_one() == 1


async def test_a_lost_connection_fails_one_use_and_the_next_reconnects(postgres_database: Database) -> None:
    shared = postgres_database.loop_connection
    pid = await backend_pid(shared)
    await asyncio.to_thread(terminate, postgres_database, pid)
    with pytest.raises(psycopg.OperationalError):
        await backend_pid(shared)
    assert await backend_pid(shared) != pid


def test_dispose_closes_the_loop_connections(postgres_database: Database) -> None:
    shared = postgres_database.loop_connection
    pid = asyncio.run(backend_pid(shared))
    connections = [c for _, _, c in shared._open.values() if c is not None]
    postgres_database.dispose()
    assert connections and all(c.closed for c in connections) and pid > 0


def test_postgresql_only(sqlite_database: Database) -> None:
    with pytest.raises(ValueError, match="PostgreSQL"):
        LoopConnection(sqlite_database.engine)


async def test_a_cancelled_statement_drops_the_connection(postgres_database: Database) -> None:
    shared = postgres_database.loop_connection
    pid = await backend_pid(shared)

    async def slow() -> None:
        async with shared.connection() as connection:
            await connection.execute("SELECT pg_sleep(5)")

    task = asyncio.ensure_future(slow())
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await backend_pid(shared) != pid  # a new connection, not one with a statement still running


async def test_loop_connections_overlap_up_to_their_size_and_reuse_idle_ones(postgres_database: Database) -> None:
    """``LoopConnections``: a caller while another holds a connection gets a second one (up to ``size``); past
    ``size`` callers share; once idle, the first connection is used again."""
    from engine.store.loopdb import LoopConnections

    pool = LoopConnections(postgres_database.engine, 2)
    release = asyncio.Event()
    held: list[int] = []

    async def hold() -> None:
        async with pool.connection() as connection:
            row = await (await connection.execute("SELECT pg_backend_pid()")).fetchone()
            assert row is not None
            held.append(int(row[0]))
            await release.wait()

    first = asyncio.ensure_future(hold())
    while len(held) < 1:
        await asyncio.sleep(0.01)
    second = asyncio.ensure_future(hold())
    while len(held) < 2:
        await asyncio.sleep(0.01)
    third = asyncio.ensure_future(hold())  # both busy: it waits for one of them
    await asyncio.sleep(0.05)
    assert len(held) == 2 and held[0] != held[1]
    release.set()
    await asyncio.gather(first, second, third)
    assert held[2] in held[:2]
    assert await backend_pid(pool) == held[0]  # idle again: the first one
    pool.close()
