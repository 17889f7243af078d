"""An app and its runtime are freed once nothing uses them: FastAPI keeps every endpoint callable it classified in
process-wide caches, so a handler closing over the runtime kept each app's runtime (engine, registry, clients)
alive for the rest of the process. Proved with weak references, with MCP and metrics on (their handlers too)."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import httpx
import pytest

from engine.api import create_app
from engine.catalog.registry import Registry
from engine.runtime import Runtime
from engine.settings import Settings
from support import sample_definition as s
from support.scratchdb import upgrade_sqlite


async def _serve_once(tmp_path: Path) -> weakref.ref[Runtime]:
    registry = Registry()
    registry.register(s.definition)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 't.db'}", mcp=True, metrics=True)
    runtime = Runtime.start(settings, registry=registry)
    upgrade_sqlite(runtime.db)
    app = create_app(runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tether.test") as client:
        health = await client.get("/healthz")
        assert health.status_code == 200 and health.json()["definitions"] == 1
        assert (await client.get("/metrics")).status_code == 200
        assert (await client.get("/.well-known/oauth-protected-resource")).status_code == 200
    runtime.close()
    return weakref.ref(runtime)


async def test_a_closed_runtime_is_not_kept_by_its_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_SAMPLE_CLIENT_ID", "sample-client")
    monkeypatch.setenv("TETHER_SECRET_SAMPLE_CLIENT_SECRET", "s3cr3t-value")
    ref = await _serve_once(tmp_path)
    gc.collect()
    assert ref() is None
