"""Structured logs (``engine.observability.logs``): JSON lines with the run, delivery and integration IDs, and no
secret on any path, whoever logged it (issue 23)."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from pydantic import SecretStr

from engine.authoring.config import OperatorConfig, load_operator_config
from engine.authoring.slots import OAuth2Token
from engine.custody.crypto import generate_master_key
from engine.observability import logs
from engine.observability.logs import forget_recent_secrets, log_context, scrub
from engine.processes import install_sink
from engine.queue import worker as worker_module
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database
from engine.store.tables import Integration, IntegrationStatus, Run, RunStatus
from support.json_log import json_lines, json_log
from support.ops_definition import OpsToken
from support.workers import REDIS_URL

TESTS = Path(__file__).resolve().parents[1]
TOKEN = "tok-" + uuid.uuid4().hex
REFRESH = "rt-" + uuid.uuid4().hex
SIGNING = "whsec-" + uuid.uuid4().hex


class AcmeConfig(OperatorConfig):
    client_id: str
    client_secret: SecretStr


@pytest.fixture
def sink() -> Iterator[io.StringIO]:
    with json_log() as stream:
        yield stream


@pytest.fixture(autouse=True)
def _own_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not the secrets other tests' runtimes noted for the whole process (an operator config's "secret" would blank
    the word in "client_secret" here): each test sees the scrubbing of what it notes itself."""
    monkeypatch.setattr(logs, "_process", set())
    monkeypatch.setattr(logs, "_sorted", None)


def test_a_queued_run_logs_json_with_its_ids_and_not_the_token_its_provider_quoted(
    postgres_database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_client: redis.Redis
) -> None:
    """A real ``tether worker`` with ``TETHER_LOG_FORMAT=json`` runs ``Broken``, whose provider error quotes the
    stored token and which logs that error itself."""
    namespace = f"tether_test_{uuid.uuid4().hex[:12]}"
    env = {
        "TETHER_DATABASE_URL": postgres_database.url,
        "TETHER_SECRET_MASTER_KEY": generate_master_key(),
        "TETHER_DEFINITION_MODULES": "support.ops_definition",
        "TETHER_STATE_DIR": str(tmp_path / "state"),
        "TETHER_BROKER_URL": REDIS_URL,
        "TETHER_BROKER_NAMESPACE": namespace,
        "TETHER_LOG_FORMAT": "json",
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    worker_module.reset()
    runtime = Runtime.start(Settings())
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli_workers", "worker", "--threads", "2"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and "tether worker ready" in proc.stdout.readline()
        with runtime.db.session() as session:
            integration = Integration(
                tenant_id="t1",
                owner_id="u1",
                definition_id="ops",
                status=IntegrationStatus.connected,
                provider_data={"connection": "OpsKey"},
            )
            session.add(integration)
        runtime.keystore.save(integration.id, OpsToken(token=TOKEN))  # type: ignore[arg-type]
        run_id = asyncio.run(runtime.executor.dispatch(integration.id, "Broken", trigger="api"))
        deadline = time.monotonic() + 60  # a bound against hangs, not a timing assertion
        while True:
            with runtime.db.session() as session:
                run = session.get(Run, run_id)
                assert run is not None
                if run.status == RunStatus.failed:
                    break
            assert time.monotonic() < deadline, f"run still {run.status}"
            time.sleep(0.05)
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=30)
        worker_module.reset()
        runtime.close()
        keys = list(redis_client.scan_iter(f"{namespace}:*"))
        if keys:
            redis_client.delete(*keys)
    lines = json_lines(err)
    of_run = [line for line in lines if line.get("run_id") == run_id]
    assert any(line["logger"] == "support.ops" for line in of_run), err
    assert all(line["integration_id"] == integration.id for line in of_run)
    assert any("failed" in str(line["message"]) for line in of_run)
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    assert TOKEN not in err and "[redacted]" in err


async def test_an_oauth_refresh_failure_is_scrubbed_of_the_slots_secrets(
    sink: io.StringIO, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Keystore notes the ``SecretStr`` values of every slot it opens; a line quoting them in the same context
    (a provider's refusal echoing the refresh token) is scrubbed, while the slot's other fields stay readable."""
    monkeypatch.setenv("TETHER_SECRET_MASTER_KEY", generate_master_key())
    runtime = Runtime.start(
        Settings(
            database_url=f"sqlite:///{tmp_path / 'r.db'}",
            definition_modules="support.ops_definition",
            state_dir=str(tmp_path / "s"),
        ),
        migrate=True,
    )
    try:
        with runtime.db.session() as session:
            integration = Integration(tenant_id="t1", owner_id="u1", definition_id="ops")
            session.add(integration)
        runtime.keystore.save(integration.id, OAuth2Token(access_token=TOKEN, refresh_token=REFRESH))  # type: ignore[arg-type]
        forget_recent_secrets()  # only what is opened below counts
        with log_context(run_id="run-1", integration_id=integration.id):
            stored = runtime.keystore.require(integration.id, OAuth2Token)
            assert stored.slot.token_type == "Bearer"
            logging.getLogger("tether.custody").warning(
                "refresh failed: invalid_grant (%s, token type %s)", f"refresh token {REFRESH} was revoked", "Bearer"
            )
        logging.getLogger("tether.custody").warning("after the run: %s", REFRESH)  # remembered past its context
    finally:
        runtime.close()
    lines = [line for line in json_lines(sink.getvalue()) if line["logger"] == "tether.custody"]
    assert lines[0]["run_id"] == "run-1" and lines[0]["integration_id"] == integration.id
    assert "token type Bearer" in str(lines[0]["message"])
    assert "run_id" not in lines[1]
    assert REFRESH not in sink.getvalue() and TOKEN not in sink.getvalue()


def test_operator_secrets_are_scrubbed_from_every_line_of_the_process(sink: io.StringIO) -> None:
    """An OAuth app's ``client_secret`` (operator config, read once) that a token endpoint's refusal echoes."""
    client_secret = "cs-" + uuid.uuid4().hex
    config = load_operator_config(
        "acme", AcmeConfig, {"TETHER_ACME_CLIENT_ID": "acme-app", "TETHER_SECRET_ACME_CLIENT_SECRET": client_secret}
    )
    client_id = config.client_id  # type: ignore[attr-defined]
    logging.getLogger("tether.custody").warning("token endpoint said: bad client %s/%s", client_id, client_secret)
    (line,) = json_lines(sink.getvalue())
    assert line["message"] == "token endpoint said: bad client acme-app/[redacted]"


def test_a_webhook_delivery_with_signature_and_authorization_headers(sink: io.StringIO) -> None:
    headers = {"X-Sample-Signature": f"sha256={SIGNING}", "Authorization": f"Bearer {TOKEN}"}
    with log_context(delivery_id="dlv-1", integration_id="int-1"):
        logging.getLogger("tether.webhooks").warning("delivery refused, headers %s", headers)
        logging.getLogger("tether.webhooks").info("Authorization: Bearer %s", TOKEN)
    lines = json_lines(sink.getvalue())
    assert all(line["delivery_id"] == "dlv-1" and line["integration_id"] == "int-1" for line in lines)
    assert "run_id" not in lines[0]
    assert TOKEN not in sink.getvalue()


def test_an_egress_error_quoting_a_url_and_a_form_body(sink: io.StringIO) -> None:
    logging.getLogger("httpx").warning(
        "refused https://api.example/v1/me?access_token=%s&page=2 after body client_secret=%s&refresh_token=%s",
        TOKEN,
        SIGNING,
        REFRESH,
    )
    logging.getLogger("tether.egress").warning('provider said {"access_token": "%s", "expires_in": 3600}', TOKEN)
    text = sink.getvalue()
    assert "page=2" in text and '"expires_in\\": 3600' in text
    assert TOKEN not in text and SIGNING not in text and REFRESH not in text


def test_an_exception_traceback_is_logged_by_type_and_scrubbed_without_type_only(sink: io.StringIO) -> None:
    with log_context(run_id="run-2"):
        try:
            raise RuntimeError(f"provider said access_token={TOKEN}")
        except RuntimeError:
            logging.getLogger("dramatiq.worker.WorkerThread").exception("Failed to process message")
    (line,) = json_lines(sink.getvalue())
    assert line["run_id"] == "run-2" and line["message"] == "Failed to process message [RuntimeError]"
    assert TOKEN not in sink.getvalue()
    # A handler without ``TypeOnly`` (a host app's own) keeps the traceback, scrubbed of the secrets of the context.
    from engine.observability.logs import JsonFormatter, ScrubSecrets

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ScrubSecrets())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(f"test.logs.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.addHandler(handler)
    from engine.observability.logs import note_secrets

    with log_context(run_id="run-3"):
        note_secrets([SIGNING])
        try:
            raise ValueError(f"bad signature with secret {SIGNING}")
        except ValueError:
            logger.exception("verify failed")
    (line,) = json_lines(stream.getvalue())
    assert line["exc_type"] == "ValueError" and "Traceback" in str(line["exception"])
    assert "[redacted]" in str(line["exception"]) and SIGNING not in stream.getvalue()


def test_serve_logs_json_through_uvicorns_config(tmp_path: Path) -> None:
    """``uvicorn_log_config(level, "json")`` as ``tether serve`` installs it: the access line and the root logger's."""
    script = textwrap.dedent(
        f"""
        import logging, logging.config
        from engine.processes import uvicorn_log_config
        logging.config.dictConfig(uvicorn_log_config("INFO", "json"))
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "GET", "/cb?code=c0de-{TOKEN}&access_token={TOKEN}", "1.1", 400
        )
        logging.getLogger("tether.api").warning("upstream answered Bearer {TOKEN}")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    lines = json_lines(output)
    assert [line["logger"] for line in lines] == ["uvicorn.access", "tether.api"]
    assert "GET /cb?code=[redacted]&access_token=[redacted]" in str(lines[0]["message"])
    assert TOKEN not in output


def test_text_format_ends_lines_with_the_ids() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    install_sink(handler, "text")
    logger = logging.getLogger(f"test.logs.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.addHandler(handler)
    with log_context(run_id="r1", integration_id="i1"):
        logger.warning("token %s", f"Bearer {TOKEN}")
    assert stream.getvalue().rstrip().endswith("token Bearer [redacted] run_id=r1 integration_id=i1")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GET /x?refresh_token=abc123&x=1", "GET /x?refresh_token=[redacted]&x=1"),
        ("Authorization: Basic dXNlcjpwYXNz", "Authorization: [redacted]"),
        ('{"client_secret": "s3", "id": 1}', '{"client_secret": "[redacted]", "id": 1}'),
        ("nothing to hide=here", "nothing to hide=here"),
        ("the token endpoint refused basic authentication", "the token endpoint refused basic authentication"),
    ],
)
def test_token_shapes(text: str, expected: str) -> None:
    assert scrub(text) == expected


def test_a_line_logged_under_an_active_span_carries_its_trace(sink: io.StringIO) -> None:
    from opentelemetry import trace

    span = trace.NonRecordingSpan(trace.SpanContext(trace_id=0xABC, span_id=0xDEF, is_remote=False))
    with log_context(run_id="run-4"), trace.use_span(span):
        logging.getLogger("tether.worker").info("inside")
    logging.getLogger("tether.worker").info("outside")
    inside, outside = json_lines(sink.getvalue())
    assert inside["trace_id"] == f"{0xABC:032x}" and inside["span_id"] == f"{0xDEF:016x}"
    assert inside["run_id"] == "run-4" and "trace_id" not in outside and "run_id" not in outside


def test_a_known_secret_that_is_also_a_word_does_not_unmask_a_keyed_value() -> None:
    """An operator secret that is an ordinary word ("secret") used to blank the name in ``client_secret=…`` first,
    so the value after it no longer matched the keyed shape and stayed in the line."""
    text = scrub("refresh failed: client_secret=whsec-0123456789abcdef&grant_type=refresh_token", ["secret"])
    assert "whsec-0123456789abcdef" not in text
