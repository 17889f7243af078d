"""The ``tether`` command, run as a real process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory

from engine.store.database import alembic_config

TETHER = str(Path(sys.executable).with_name("tether"))
TESTS = Path(__file__).resolve().parents[1]


def tether_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env.update({"TETHER_DATABASE_URL": f"sqlite:///{tmp_path / 'tether.db'}", "PYTHONPATH": str(TESTS)})
    env.update(extra)
    return env


def tether(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TETHER, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=tether_env(tmp_path, **extra),
        cwd=tmp_path,
    )


def test_definitions_check_passes_on_the_catalog(tmp_path: Path) -> None:
    result = tether(tmp_path, "definitions", "check")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: ")


def test_definitions_check_fails_naming_the_rule(tmp_path: Path) -> None:
    result = tether(tmp_path, "definitions", "check", TETHER_DEFINITION_MODULES="support.broken_definition")
    assert result.returncode == 1
    assert "broken_sample" in result.stderr and "[https_only]" in result.stderr


def test_definitions_list_and_show(tmp_path: Path) -> None:
    listing = tether(tmp_path, "definitions", "list", "--json")
    assert listing.returncode == 0, listing.stderr
    ids = [d["id"] for d in json.loads(listing.stdout)]
    assert "github_app" in ids
    text = tether(tmp_path, "definitions", "list", TETHER_DEFINITION_MODULES="support.sample_definition")
    assert "sample  (Sample, disabled)" in text.stdout and "emits:       asset/item" in text.stdout
    shown = tether(tmp_path, "definitions", "show", "github_app")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["id"] == "github_app"
    missing = tether(tmp_path, "definitions", "show", "nope")
    assert missing.returncode == 1 and "no definition 'nope'" in missing.stderr


def test_db_upgrade(tmp_path: Path) -> None:
    result = tether(tmp_path, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert f"database at revision {head} (sqlite)" in result.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [TETHER, "serve", "--port", str(port)],
        env=tether_env(tmp_path),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"tether serve exited: {process.stdout.read() if process.stdout else ''}")
            try:
                httpx.get(base + "/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_serve_answers_healthz_and_the_catalog(served: str) -> None:
    health = httpx.get(served + "/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    catalog = httpx.get(served + "/v1/definitions").json()
    assert "github_app" in [d["id"] for d in catalog]
    detail = httpx.get(served + "/v1/definitions/github_app").json()
    manual = [c for c in detail["connection_details"] if c["manual_slot_schema"]]
    assert manual and "token" in manual[0]["manual_slot_schema"]["properties"]


def test_api_keys_create_prints_the_key_once(tmp_path: Path) -> None:
    tether(tmp_path, "db", "upgrade")
    result = tether(tmp_path, "api-keys", "create", "--tenant", "acme", "--name", "host")
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    assert key.startswith("tk_") and "acme" in result.stderr and key not in result.stderr
    from engine.api.principal import authenticate_api_key
    from engine.store.database import Database

    principal = authenticate_api_key(Database(f"sqlite:///{tmp_path / 'tether.db'}"), key)
    assert (principal.tenant_id, principal.role) == ("acme", "server")
    refused = tether(tmp_path, "api-keys", "create", "--tenant", "acme", "--role", "user")
    assert refused.returncode == 1
