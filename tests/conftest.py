"""Shared fixtures: real databases (SQLite and the machine's PostgreSQL), each in its own scratch space.

In CI (``CI=true``) a service that cannot be reached fails the test; on a developer machine it is skipped with
the reason, so a laptop without PostgreSQL can still run the rest.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError

from engine.store.database import Database, normalize_url
from support.embedded import EmbeddedWorker
from support.scratchdb import PostgresSchemas, check_migrated, upgrade_sqlite

#: The standard suite's ``standard_suite`` fixture (``engine.testing.pytest_plugin``), for every definition's tests.
pytest_plugins = ["engine.testing.pytest_plugin"]

POSTGRES_URL = os.environ.get("TETHER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def service_unavailable(name: str, reason: str) -> None:
    message = f"{name} is not reachable: {reason}"
    if IN_CI:
        pytest.fail(message + " (CI=true: a missing service is a failure)", pytrace=False)
    pytest.skip(message)


def _postgres_schema_url(schema: str) -> str:
    url = make_url(normalize_url(POSTGRES_URL))
    return url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_schemas() -> Iterator[PostgresSchemas]:
    """Makes and drops the scratch schemas of ``postgres_database`` (one made ahead, drops in the background)."""
    schemas = PostgresSchemas(POSTGRES_URL, _postgres_schema_url)
    yield schemas
    schemas.close()


@pytest.fixture
def postgres_database(postgres_schemas: PostgresSchemas) -> Iterator[Database]:
    """A fresh, migrated schema in the real PostgreSQL, dropped afterwards (``support.scratchdb``: the migrations'
    statements recorded once and replayed, the schema made while the previous test ran and dropped in the
    background)."""
    try:
        schema = postgres_schemas.take()
    except (OperationalError, InterfaceError, OSError) as exc:  # a migration's own error is not "unreachable"
        service_unavailable("PostgreSQL", type(exc).__name__)
    db = Database(_postgres_schema_url(schema))
    try:
        check_migrated(db)
        yield db
    finally:
        db.dispose()
        postgres_schemas.give_back(schema)


@pytest.fixture
def sqlite_database(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'tether.db'}")
    upgrade_sqlite(db)  # a copy of a file migrated once
    yield db
    db.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest) -> Database:
    """The store suite runs once per database."""
    return request.getfixturevalue(f"{request.param}_database")


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    """A client of the real Redis (the queue suites' broker)."""
    from support.workers import REDIS_URL

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        service_unavailable("Redis", type(exc).__name__)
    yield client
    client.close()


@pytest.fixture
def embedded() -> Iterator[EmbeddedWorker]:
    """The embedded worker of ``tether serve`` (``support.embedded``): ``embedded.start(app)``, then
    ``await embedded.drain()`` once the test has posted what it wants processed."""
    worker = EmbeddedWorker()
    yield worker
    worker.stop()


@pytest.hookimpl(trylast=True)  # after pytest's own last collection (it reports unraisable exceptions found then)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Last thing of the run: move every object to the collector's permanent generation. The interpreter's exit
    then frees the suite's heap by reference counting alone instead of walking all of it in the repeated full
    collections of its module teardown (minutes for a heap of a few GB: measured in docs/benchmarks.md)."""
    gc.freeze()
