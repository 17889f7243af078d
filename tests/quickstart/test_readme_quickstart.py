"""The README's quickstart runs as written: ``scripts/run`` serves, and its first ``sh`` block, run by bash from
the repository's root as a user pastes it, ends with ingested records printed.

What the test changes from a user's machine is only where things live: the database and the master key (through
``TETHER_DATABASE_URL`` and ``TETHER_SECRET_MASTER_KEY``, so the clone's own ``tether.db`` is left alone), and the
port (``scripts/run --port``, with ``TETHER_URL`` telling the block where the server is: the block reads it with
the default a user gets).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from engine.custody.crypto import generate_master_key
from support.server import free_port

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def quickstart_block(text: str) -> str:
    """The first ```sh block after the ``## Quickstart`` heading."""
    section = text.split("\n## Quickstart", 1)[1]
    body = section.split("\n```sh\n", 1)[1]
    return body.split("\n```", 1)[0]


def test_the_quickstart_block_is_found_and_uses_the_default_url() -> None:
    block = quickstart_block(README.read_text())
    assert "TETHER_URL=${TETHER_URL:-http://127.0.0.1:8000}" in block
    assert "sandbox" in block


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    port = free_port()
    env = {
        **os.environ,
        "TETHER_DATABASE_URL": f"sqlite:///{tmp_path / 'tether.db'}",
        "TETHER_SECRET_MASTER_KEY": generate_master_key(),
        "TETHER_URL": f"http://127.0.0.1:{port}",
    }
    for name in ("TETHER_PUBLIC_URL", "TETHER_PORT", "TETHER_HOST", "TETHER_BROKER_URL", "TETHER_SANDBOX"):
        env.pop(name, None)
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        ["bash", "scripts/run", "--port", str(port), "--no-access-log"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        _wait_until_serving(env["TETHER_URL"], server, tmp_path / "serve.log")
        yield env["TETHER_URL"], env
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _wait_until_serving(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(600):  # bounded by count: scripts/run may install first
        if server.poll() is not None:
            raise AssertionError(f"scripts/run exited {server.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"scripts/run did not serve:\n{log.read_text()}")


def test_the_quickstart_runs_as_written(served: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    url, env = served
    serve_log = (tmp_path / "serve.log").read_text()
    # scripts/run says what to do next: the page, the sandbox and the quickstart.
    assert f"{url}/integrations" in serve_log and f"{url}/sandbox/" in serve_log and "Quickstart" in serve_log

    block = quickstart_block(README.read_text())
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=240,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    # The last command prints the ingested directory accounts of the sandbox's acme account.
    assert done.stdout.count("@acme.example") >= 10, done.stdout


def test_scripts_run_with_port_alone_gives_redirect_uris_on_that_port(served: tuple[str, dict[str, str]]) -> None:
    """``scripts/run --port P`` and nothing else: the sandbox's OAuth redirect comes back to port P."""
    url, env = served
    key = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "tether"), "api-keys", "create", "--tenant", "ports"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    headers = {"Authorization": f"Bearer {key}"}
    created = httpx.post(f"{url}/v1/integrations", headers=headers, json={"definition_id": "sandbox", "owner_id": "u"})
    assert created.status_code == 201, created.text
    connect = httpx.post(
        f"{url}/v1/integrations/{created.json()['id']}/connect",
        headers=headers,
        json={"return_url": f"{url}/integrations"},
    )
    assert connect.status_code == 200, connect.text
    start = connect.json()["redirect_url"]  # Tether's own start page binds the browser, then sends it on
    assert start.startswith(f"{url}/v1/oauth/start?")
    redirect = httpx.URL(httpx.get(start, follow_redirects=False).headers["location"])
    assert str(redirect).startswith(f"{url}/sandbox/oauth/authorize?")
    assert redirect.params["redirect_uri"].startswith(f"{url}/")
