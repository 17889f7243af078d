"""A live Tether for the client's tests: the app under uvicorn on 127.0.0.1 over a real runtime on SQLite, with the
embedded worker running queued operations, serving the ops test definition (``support.ops_definition``: a typed-in
``OpsToken`` slot, an inline ``Ping`` and a queued ``AssetSync`` that lands ``asset`` records)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.api import create_app
from engine.api.principal import create_api_key
from engine.custody.crypto import generate_master_key
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database
from support.embedded import EmbeddedWorker
from support.server import free_port, serve

#: The key the live server checks ``X-Tether-Principal`` headers with.
PRINCIPAL_KEY = "client-tests-principal-key-7d1e"


@dataclass
class Live:
    base: str
    runtime: Runtime
    #: A ``server`` API key of tenant ``acme``.
    key: str


@pytest.fixture
def live(
    sqlite_database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedded: EmbeddedWorker
) -> Iterator[Live]:
    monkeypatch.setenv("TETHER_SECRET_MASTER_KEY", generate_master_key())
    monkeypatch.setenv("TETHER_SECRET_PRINCIPAL_KEY", PRINCIPAL_KEY)
    settings = Settings(
        database_url=sqlite_database.url, definition_modules="support.ops_definition", state_dir=str(tmp_path)
    )
    runtime = Runtime.start(settings)
    key, _ = create_api_key(runtime.db, tenant="acme", role="server", name="host app")
    try:
        app = create_app(runtime)
        embedded.start(app)
        with serve(app, free_port()) as base:
            yield Live(base, runtime, key)
    finally:
        runtime.close()


@pytest.fixture
def live_sandbox(
    sqlite_database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedded: EmbeddedWorker
) -> Iterator[Live]:
    """The embedded default's sandbox provider on (``/sandbox`` on this very origin, the ``sandbox`` definition),
    the environment saying the same as the settings (the egress guard reads its own-origin rule from it)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    for name, value in {
        "TETHER_SECRET_MASTER_KEY": generate_master_key(),
        "TETHER_SANDBOX": "1",
        "TETHER_PUBLIC_URL": base,
        "TETHER_DATABASE_URL": sqlite_database.url,
    }.items():
        monkeypatch.setenv(name, value)
    runtime = Runtime.start(
        Settings(database_url=sqlite_database.url, state_dir=str(tmp_path), public_url=base, sandbox=True)
    )
    key, _ = create_api_key(runtime.db, tenant="acme", role="server", name="host app")
    try:
        app = create_app(runtime)
        embedded.start(app)
        with serve(app, port) as served:
            yield Live(served, runtime, key)
    finally:
        runtime.close()
