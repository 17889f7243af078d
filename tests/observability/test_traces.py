"""Traces (issue 23): one queued run is one trace from the API request, through the Redis message, to the run's
execution in a real ``tether worker`` subprocess.

The test process traces into the SDK's in-memory exporter; the worker, configured like any deployment but with
``TETHER_TRACE_FILE``, writes its spans as JSON lines (``engine.observability.tracing.JsonLinesSpanExporter``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from engine.api import create_app
from engine.api.principal import create_api_key
from engine.observability import tracing
from engine.observability.tracing import span_record
from engine.store.tables import RunStatus
from execution.conftest import _make_env, _teardown

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracing.use(provider)
    yield memory
    tracing.use(None)
    provider.shutdown()


@pytest.fixture
def ops(postgres_database, tmp_path, monkeypatch, redis_client):
    env = _make_env(postgres_database, tmp_path, monkeypatch, redis_client)
    yield env
    _teardown(env)


def worker_spans(path: Path, wanted: str, bound: float = 30.0) -> list[dict[str, Any]]:
    """The worker's spans once ``wanted`` is among them (a bound against hangs, not a timing assertion)."""
    deadline = time.monotonic() + bound
    while True:
        spans = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        if any(item["name"] == wanted for item in spans):
            return spans
        if time.monotonic() > deadline:
            raise AssertionError(f"no {wanted} span from the worker; got {[item['name'] for item in spans]}")
        time.sleep(0.05)


def one(spans: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = [item for item in spans if item["name"] == name]
    assert len(found) == 1, (name, [item["name"] for item in spans])
    return found[0]


def ancestors(spans: list[dict[str, Any]], item: dict[str, Any]) -> list[str]:
    by_id = {span["span_id"]: span for span in spans}
    names = []
    while item["parent_span_id"] in by_id:
        item = by_id[item["parent_span_id"]]
        names.append(item["name"])
    return names


async def test_a_queued_run_is_one_trace_from_the_api_request_to_the_worker(ops, exporter, tmp_path) -> None:
    trace_file = tmp_path / "worker-spans.jsonl"
    ops.env["TETHER_TRACE_FILE"] = str(trace_file)  # the worker subprocess only
    ops.start_worker()
    integration = ops.connect()
    key, _ = create_api_key(ops.runtime.db, tenant="t1", role="server")
    with TestClient(create_app(ops.runtime)) as client:
        queued = client.post(
            f"/v1/integrations/{integration}/operations/Echo",
            headers={"Authorization": f"Bearer {key}"},
            json={"config": {"value": "traced"}},
        )
    assert queued.status_code == 202
    run_id = queued.json()["run_id"]
    assert (await ops.wait(run_id)).status == RunStatus.succeeded

    server = [span_record(item) for item in exporter.get_finished_spans()]
    request = next(item for item in server if item["kind"] == SpanKind.SERVER.name)
    assert request["name"] == "POST /v1/integrations/{integration_id}/operations/{operation}"
    assert request["parent_span_id"] is None
    send = one(server, "tether.execute_run send")
    assert send["kind"] == SpanKind.PRODUCER.name and send["trace_id"] == request["trace_id"]
    assert request["name"] in ancestors(server, send)

    spans = await asyncio.to_thread(worker_spans, trace_file, "tether.execute_run process")
    process = one(spans, "tether.execute_run process")
    assert process["service"] == "tether-worker" and process["kind"] == SpanKind.CONSUMER.name
    # Parented through the message: the API's trace, the producer span as parent.
    assert process["trace_id"] == request["trace_id"]
    assert process["parent_span_id"] == send["span_id"]
    assert process["attributes"]["messaging.system"] == "dramatiq"
    execute = one(spans, "tether.run.execute")
    assert execute["trace_id"] == request["trace_id"] and execute["parent_span_id"] == process["span_id"]
    assert execute["attributes"]["tether.run.id"] == run_id
    assert execute["attributes"]["tether.definition"] == "ops"
    assert execute["attributes"]["tether.operation"] == "Echo"
    assert execute["attributes"]["tether.run.outcome"] == "succeeded"
    assert execute["status"] != "ERROR" and process["status"] != "ERROR"
