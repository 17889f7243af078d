"""A live Tether with the sandbox on: uvicorn on a free 127.0.0.1 port, ``public_url`` that very origin.

The environment says the same as the runtime's settings (``TETHER_SANDBOX=1``, ``TETHER_PUBLIC_URL``), since the
egress guard reads its own-origin rule from a fresh ``Settings()`` per client, as in a real process.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from engine.api import create_app
from engine.custody.crypto import generate_master_key
from engine.runtime import Runtime
from engine.settings import Settings
from support.server import free_port, serve


@dataclass
class LiveSandbox:
    base: str
    runtime: Runtime
    http: httpx.Client

    @property
    def sandbox(self) -> str:
        return f"{self.base}/sandbox"

    def control(self, path: str, method: str = "POST", **kwargs: object) -> httpx.Response:
        return self.http.request(method, f"{self.sandbox}/control/accounts/{path}", **kwargs)  # type: ignore[arg-type]


def start(
    database_url: str, state_dir: str, monkeypatch: pytest.MonkeyPatch, **settings: object
) -> Iterator[LiveSandbox]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("TETHER_SECRET_MASTER_KEY", generate_master_key())
    monkeypatch.setenv("TETHER_SANDBOX", "1")
    monkeypatch.setenv("TETHER_PUBLIC_URL", base)
    monkeypatch.setenv("TETHER_DATABASE_URL", database_url)
    runtime = Runtime.start(
        Settings(database_url=database_url, state_dir=state_dir, public_url=base, sandbox=True, **settings),  # type: ignore[arg-type]
        migrate=True,
    )
    try:
        with serve(create_app(runtime), port), httpx.Client(timeout=30) as http:
            yield LiveSandbox(base, runtime, http)
    finally:
        runtime.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSandbox]:
    """One server per module (start-up and migrations cost seconds): tests reset what they change."""
    path = tmp_path_factory.mktemp("sandbox")
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield from start(f"sqlite:///{path / 'tether.db'}", str(path), monkeypatch)


@pytest.fixture
def live_postgres(postgres_database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveSandbox]:  # type: ignore[no-untyped-def]
    yield from start(postgres_database.url, str(tmp_path), monkeypatch)
