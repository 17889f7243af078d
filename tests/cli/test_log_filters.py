"""The log filters that ``tether serve``, ``worker`` and ``scheduler`` install, and the app's handling of errors."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from engine.api.app import TetherApp
from engine.api.errors import install_error_handlers
from engine.processes import RedactQuery, TypeOnly, redact_query
from engine.store.database import Database

SECRET = "hunter2-SECRET-0b9"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/v1/oauth/callback?code=abc&state=def", "/v1/oauth/callback?code=[redacted]&state=[redacted]"),
        ("/v1/oauth/start?flow=f1&session=s3", "/v1/oauth/start?flow=f1&session=[redacted]"),
        ("/x?%73tate=1&Code=2&scope=read+write", "/x?%73tate=[redacted]&Code=[redacted]&scope=read+write"),
        ("/x?code", "/x?code"),
        ("/x?codes=1&code=", "/x?codes=1&code=[redacted]"),
        ("/v1/integrations", "/v1/integrations"),
    ],
)
def test_redact_query(target: str, expected: str) -> None:
    assert redact_query(target) == expected


def records_through(filters: list[logging.Filter]) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    for f in filters:
        handler.addFilter(f)
    logger = logging.getLogger(f"test.filters.{len(filters)}.{id(stream)}")
    logger.propagate = False
    logger.addHandler(handler)
    return logger, stream


def test_access_records_are_redacted() -> None:
    logger, stream = records_through([RedactQuery(), TypeOnly()])
    logger.warning('%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "GET", f"/v1/oauth/callback?code={SECRET}", "1.1", 400)
    assert stream.getvalue() == '127.0.0.1:1 - "GET /v1/oauth/callback?code=[redacted] HTTP/1.1" 400\n'


def test_exceptions_are_logged_by_type_only() -> None:
    logger, stream = records_through([TypeOnly()])
    try:
        raise ValueError(f"the text {SECRET}")
    except ValueError:
        logger.exception("Exception in ASGI application")
    assert stream.getvalue() == "Exception in ASGI application [ValueError]\n"


def test_sqlalchemy_errors_hold_no_parameters(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'p.db'}")
    with pytest.raises(DBAPIError) as caught, db.engine.connect() as connection:
        connection.execute(text("SELECT * FROM nowhere WHERE x = :x"), {"x": SECRET})
    assert SECRET not in str(caught.value)
    db.dispose()


def test_sqlalchemy_errors_hold_no_parameters_on_postgres(postgres_database: Database) -> None:
    with pytest.raises(DBAPIError) as caught, postgres_database.engine.connect() as connection:
        connection.execute(text("SELECT * FROM nowhere WHERE x = :x"), {"x": SECRET})
    assert SECRET not in str(caught.value) and "parameters hidden" in str(caught.value)
    # PostgreSQL's own message may still quote a value (``invalid input syntax for type integer: "…"``): that is
    # why exceptions are logged by type only, and hiding parameters is the second line, not the first.
    with pytest.raises(DBAPIError) as caught, postgres_database.engine.connect() as connection:
        connection.execute(text("SELECT CAST(:x AS integer)"), {"x": SECRET})
    assert "parameters hidden" in str(caught.value)


@pytest.fixture
def failing_app() -> Iterator[FastAPI]:
    app = TetherApp()
    install_error_handlers(app)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError(SECRET)

    yield app


async def test_an_unhandled_error_is_answered_and_logged_by_type_not_reraised(
    failing_app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    # raise_app_exceptions: an exception re-raised to the server is what the server logs with its traceback.
    transport = httpx.ASGITransport(app=failing_app, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://tether.test") as client:
        with caplog.at_level(logging.DEBUG):
            response = await client.get("/boom")
    assert response.status_code == 500 and response.json()["error"]["code"] == "internal_error"
    assert "unhandled RuntimeError" in caplog.text
    assert SECRET not in caplog.text and all(r.exc_info is None for r in caplog.records)


def test_worker_logging_drops_tracebacks(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import logging
        from engine.processes import configure_worker_logging
        configure_worker_logging()
        try:
            raise KeyError("{SECRET}")
        except KeyError:
            logging.getLogger("dramatiq.worker.WorkerThread").error("Failed to process message", exc_info=True)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Failed to process message [KeyError]" in result.stderr
    assert SECRET not in result.stderr and "Traceback" not in result.stderr
