"""Fixtures of the webhook suite (helpers live in ``support.webhook_kit``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from engine.runtime import Runtime
from engine.store.database import Database
from support.scratchdb import upgrade_sqlite
from support.webhook_kit import Setup, build_setup, make_app


@pytest.fixture
async def setup(database: Database, monkeypatch: pytest.MonkeyPatch) -> Setup:
    """An integration with one endpoint per scheme, on both databases."""
    return await build_setup(database, monkeypatch)


@pytest.fixture
async def sqlite_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Setup]:
    db = Database(f"sqlite:///{tmp_path / 'hooks.db'}")
    upgrade_sqlite(db)
    yield await build_setup(db, monkeypatch)
    db.dispose()


@pytest.fixture
async def app_for() -> AsyncIterator[Any]:
    clients: list[httpx.AsyncClient] = []

    def build(runtime: Runtime) -> tuple[FastAPI, httpx.AsyncClient]:
        app = make_app(runtime)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tether.test")
        clients.append(client)
        return app, client

    yield build
    for client in clients:
        await client.aclose()
