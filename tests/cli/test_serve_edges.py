"""``tether serve`` as a real process: the links it hands out point at the port it listens on, and its logs keep no
credential in transit (OAuth ``code``/``state``, the flow's ``session``) and no exception text."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

TETHER = str(Path(sys.executable).with_name("tether"))
TESTS = Path(__file__).resolve().parents[1]
SECRET_CODE = "c0de-SECRET-4f1a9"
SECRET_STATE = "st4te-SECRET-77b2"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    out.update(
        {
            "TETHER_DATABASE_URL": f"sqlite:///{tmp_path / 'tether.db'}",
            "TETHER_DEFINITION_MODULES": "support.sample_definition",
            "TETHER_SAMPLE_CLIENT_ID": "sample-client",
            "TETHER_SECRET_SAMPLE_CLIENT_SECRET": "s3cr3t-value",
            "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        }
    )
    out.update(extra)
    return out


@dataclass
class Served:
    base: str
    port: int
    key: str
    process: subprocess.Popen[str]

    def stop(self) -> str:
        """Stop the server; everything it wrote (stdout and stderr)."""
        self.process.terminate()
        output, _ = self.process.communicate(timeout=30)
        return output


def start(tmp_path: Path, args: list[str], port: int, **extra: str) -> Served:
    subprocess.run([TETHER, "db", "upgrade"], check=True, timeout=120, env=env(tmp_path, **extra), cwd=tmp_path)
    created = subprocess.run(
        [TETHER, "api-keys", "create", "--tenant", "t1"],
        capture_output=True, text=True, timeout=120, env=env(tmp_path, **extra), cwd=tmp_path, check=True,
    )
    process = subprocess.Popen(
        [TETHER, "serve", *args],
        env=env(tmp_path, **extra), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            pytest.fail(f"tether serve exited: {process.communicate()[0]}")
        try:
            httpx.get(base + "/healthz", timeout=1)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail("tether serve did not answer")
            time.sleep(0.2)
    return Served(base, port, created.stdout.strip(), process)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    port = free_port()
    server = start(tmp_path, ["--port", str(port)], port)
    yield server
    if server.process.poll() is None:
        server.stop()


def connect(server: Served) -> str:
    headers = {"authorization": f"Bearer {server.key}"}
    created = httpx.post(
        server.base + "/v1/integrations", json={"definition_id": "sample", "owner_id": "o1"}, headers=headers
    )
    assert created.status_code == 201, created.text
    answer = httpx.post(
        f"{server.base}/v1/integrations/{created.json()['id']}/connect", json={"connection": "OAuth"}, headers=headers
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["redirect_url"])


def test_links_point_at_the_port_serve_listens_on(served: Served) -> None:
    link = connect(served)
    assert link.startswith(f"http://127.0.0.1:{served.port}/v1/oauth/start?"), link
    provider = httpx.get(link, follow_redirects=False)
    assert provider.status_code == 302
    redirect_uri = parse_qs(urlsplit(provider.headers["location"]).query)["redirect_uri"]
    assert redirect_uri == [f"http://127.0.0.1:{served.port}/v1/oauth/callback"]


def test_an_explicit_public_url_is_kept(tmp_path: Path) -> None:
    port = free_port()
    server = start(tmp_path, ["--port", str(port)], port, TETHER_PUBLIC_URL="https://tether.example")
    try:
        assert connect(server).startswith("https://tether.example/v1/oauth/start?")
    finally:
        server.stop()


def test_the_access_log_redacts_code_state_and_session(served: Served) -> None:
    link = served.base + urlsplit(connect(served))._replace(scheme="", netloc="").geturl()
    session = parse_qs(urlsplit(link).query)["session"][0]
    assert httpx.get(link, follow_redirects=False).status_code == 302
    callback = httpx.get(
        f"{served.base}/v1/oauth/callback", params={"code": SECRET_CODE, "state": SECRET_STATE, "scope": "read"}
    )
    assert callback.status_code == 400 and callback.json()["error"]["code"] == "invalid_state"
    # Percent-encoded and upper-case names are the same parameters to a reader of the log.
    httpx.get(f"{served.base}/v1/oauth/callback?%63ode={SECRET_CODE}&STATE={SECRET_STATE}")
    output = served.stop()
    assert "GET /v1/oauth/callback?code=[redacted]&state=[redacted]&scope=read" in output, output
    assert "session=[redacted]" in output
    for secret in (SECRET_CODE, SECRET_STATE, session):
        assert secret not in output


#: A server with one route that fails the way an unexpected database error does: the exception's text holds the
#: bound parameters of the statement. Run under the log configuration ``tether serve`` uses.
FAILING_SERVER = textwrap.dedent(
    """
    import sys
    import uvicorn
    from sqlalchemy import text
    from engine.api import create_app
    from engine.processes import uvicorn_log_config
    from engine.runtime import Runtime
    from engine.settings import Settings

    runtime = Runtime.start(Settings(), migrate=True)
    app = create_app(runtime)

    @app.get("/boom")
    def boom() -> None:
        with runtime.db.engine.connect() as connection:
            connection.execute(text("SELECT * FROM no_such_table WHERE secret = :s"), {"s": "p4ram-SECRET-91c"})

    @app.get("/raw")
    def raw() -> None:
        raise RuntimeError("message-SECRET-5e0 in an exception's text")

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=uvicorn_log_config())
    """
)


def test_unhandled_errors_are_logged_by_type_only(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", FAILING_SERVER, str(port)],
        env=env(tmp_path), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(base + "/healthz", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"server did not start: {process.communicate(timeout=10)[0]}")
                time.sleep(0.2)
        for path in ("/boom", "/raw"):
            response = httpx.get(base + path)
            assert response.status_code == 500
            assert response.json() == {"error": {"code": "internal_error", "message": "internal error"}}
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert "unhandled OperationalError" in output and "unhandled RuntimeError" in output, output
    assert "p4ram-SECRET-91c" not in output and "message-SECRET-5e0" not in output, output
    assert "Traceback" not in output, output


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("127.0.0.1", 9123, "http://127.0.0.1:9123"),
        ("0.0.0.0", 9124, "http://127.0.0.1:9124"),
        ("::", 9125, "http://127.0.0.1:9125"),
        ("::1", 9126, "http://[::1]:9126"),
        ("tether.internal", 80, "http://tether.internal:80"),
    ],
)
def test_serve_settings_derive_the_public_url_from_host_and_port(
    monkeypatch: pytest.MonkeyPatch, host: str, port: int, expected: str
) -> None:
    from engine.cli import serve_settings
    from engine.settings import get_settings

    for name in ("TETHER_HOST", "TETHER_PORT", "TETHER_PUBLIC_URL"):
        monkeypatch.setenv(name, "")  # recorded, so the values serve_settings exports are undone afterwards
        monkeypatch.delenv(name)
    settings = serve_settings(host, port)
    assert (settings.host, settings.port, settings.public_url) == (host, port, expected)
    assert get_settings().public_url == expected  # every Settings() of the process agrees
    get_settings.cache_clear()
