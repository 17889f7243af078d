"""Traces (issue 23): one queued run is one trace from the API request, through the Redis message, to the run's
execution in a real ``tether worker`` subprocess; one webhook delivery is one trace from its request to its
processing by the embedded worker.

The test process traces into the SDK's in-memory exporter; the worker, configured like any deployment but with
``TETHER_TRACE_FILE``, writes its spans as JSON lines (``engine.observability.tracing.JsonLinesSpanExporter``).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
from engine.kit.egress import egress_client, egress_sync_client
from engine.observability import tracing
from engine.observability.tracing import span_record
from engine.queue import worker as worker_module
from engine.queue.tracing import OPTION
from engine.store.tables import RunStatus
from execution.conftest import _make_env, _teardown
from support.embedded import EmbeddedWorker
from support.ops_definition import OpsToken
from support.webhook_kit import Setup, event_body, sign

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


async def test_a_webhook_delivery_is_one_trace_from_the_request_to_its_processing(
    sqlite_setup: Setup, app_for: Any, embedded: EmbeddedWorker, exporter: InMemorySpanExporter
) -> None:
    runtime = sqlite_setup.runtime
    worker_module.reset()
    app, client = app_for(runtime)
    body = event_body("github", "item.changed", "traced-1")
    token = sqlite_setup.token("github")
    response = await client.post(
        f"/v1/webhooks/{token}",
        content=body,
        headers=sign("github", body, sqlite_setup.secret("github"), delivery="traced-1"),
    )
    assert response.status_code == 202
    assert app.state.webhook_sender.wait_idle()
    embedded.start(app, keep_queued=True)
    await embedded.drain()

    spans = [span_record(item) for item in exporter.get_finished_spans()]
    request = one(spans, "POST /v1/webhooks/{token}")
    assert request["kind"] == SpanKind.SERVER.name and request["parent_span_id"] is None
    assert request["attributes"]["http.response.status_code"] == 202
    assert request["attributes"]["tether.definition"] == "hooks"
    assert all(token not in json.dumps(item) for item in spans)  # the endpoint's token is never in a span
    # Verify and record are events of the request span, in that order (one span per delivery on the server: the
    # overhead target of issue 23, docs/decisions.md), not spans of their own.
    assert not [item for item in spans if item["name"] in ("tether.webhook.verify", "tether.webhook.record")]
    request_span = next(item for item in exporter.get_finished_spans() if item.name == request["name"])
    assert [item.name for item in request_span.events] == ["tether.webhook.verify", "tether.webhook.record"]
    assert request_span.start_time <= request_span.events[0].timestamp <= request_span.events[1].timestamp
    assert request["attributes"]["tether.webhook.duplicate"] is False
    # The group commit's hand-off runs in the recording's trace (the batch's other deliveries are links).
    assert one(spans, "tether.webhook.batch")["parent_span_id"] == request["span_id"]
    assert one(spans, "tether.webhook.handoff")["parent_span_id"] == one(spans, "tether.webhook.batch")["span_id"]
    send = one(spans, "tether.process_deliveries send")
    assert send["parent_span_id"] == one(spans, "tether.webhook.handoff")["span_id"]
    process = one(spans, "tether.process_deliveries process")
    assert process["parent_span_id"] == send["span_id"]
    handled = one(spans, "tether.webhook.process")
    assert handled["parent_span_id"] == process["span_id"]
    assert handled["attributes"]["tether.delivery.outcome"] == "processed"
    assert handled["attributes"]["tether.delivery.id"] == request["attributes"]["tether.delivery.id"]
    assert {item["trace_id"] for item in spans} == {request["trace_id"]}  # one trace, request to persistence


def test_off_messages_carry_no_trace_context() -> None:
    from dramatiq import Message

    assert not tracing.enabled()
    broker = worker_module.build_broker("")
    message = Message(queue_name="q", actor_name="a", args=("r",), kwargs={}, options={})
    broker.emit_before("enqueue", message, None)
    assert OPTION not in message.options
    broker.close()


class _Provider(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 200 if self.path.startswith("/accounts/") else 429 if self.path == "/limited" else 404
        self.send_response(status)
        if status == 429:
            self.send_header("Retry-After", "5")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        return None


async def test_a_provider_call_is_a_client_span_with_method_host_and_status_never_the_path_or_query(
    exporter: InMemorySpanExporter,
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Provider)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        async with egress_client(allow_loopback=True) as client:
            ok = await client.get(f"{base}/accounts/acct_4242?api_key=sk_live_query_value")
            missing = await client.get(f"{base}/nowhere")
    finally:
        server.shutdown()
    assert (ok.status_code, missing.status_code) == (200, 404)
    spans = [span_record(item) for item in exporter.get_finished_spans()]
    assert [item["name"] for item in spans] == ["GET 127.0.0.1", "GET 127.0.0.1"]
    assert [item["kind"] for item in spans] == [SpanKind.CLIENT.name] * 2
    assert spans[0]["attributes"] == {
        "http.request.method": "GET",
        "server.address": "127.0.0.1",
        "http.response.status_code": 200,
    }
    assert spans[1]["attributes"]["http.response.status_code"] == 404 and spans[1]["status"] == "ERROR"
    dumped = json.dumps(spans)
    assert "acct_4242" not in dumped and "sk_live_query_value" not in dumped and "nowhere" not in dumped


def test_a_sync_provider_call_is_the_same_client_span_as_an_async_one(exporter: InMemorySpanExporter) -> None:
    """The sync egress client (boto3's transport for AWS) gives each call the async client's span: method, host
    and status, the Retry-After flag, never the path or the query."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Provider)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with egress_sync_client(allow_loopback=True) as client:
            ok = client.get(f"{base}/accounts/acct_4242?api_key=sk_live_query_value")
            limited = client.get(f"{base}/limited")
    finally:
        server.shutdown()
    assert (ok.status_code, limited.status_code) == (200, 429)
    spans = [span_record(item) for item in exporter.get_finished_spans()]
    assert [item["name"] for item in spans] == ["GET 127.0.0.1", "GET 127.0.0.1"]
    assert [item["kind"] for item in spans] == [SpanKind.CLIENT.name] * 2
    assert spans[0]["attributes"] == {
        "http.request.method": "GET",
        "server.address": "127.0.0.1",
        "http.response.status_code": 200,
    }
    assert spans[0]["status"] == "UNSET"
    assert spans[1]["attributes"]["http.response.status_code"] == 429 and spans[1]["status"] == "ERROR"
    assert spans[1]["attributes"]["tether.retry_after"] is True
    dumped = json.dumps(spans)
    assert "acct_4242" not in dumped and "sk_live_query_value" not in dumped and "limited" not in dumped


def test_setup_steps_are_spans_of_the_credential_request(ops, exporter) -> None:
    key, _ = create_api_key(ops.runtime.db, tenant="t1", role="server")
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(create_app(ops.runtime)) as client:
        created = client.post("/v1/integrations", headers=headers, json={"definition_id": "ops", "owner_id": "u9"})
        assert created.status_code == 201
        integration = created.json()["id"]
        connected = client.post(
            f"/v1/integrations/{integration}/credentials/{OpsToken.slot_id()}",
            headers=headers,
            json={"token": "ops-secret-traced"},
        )
    assert connected.status_code == 200 and connected.json()["status"] == "connected"
    spans = [span_record(item) for item in exporter.get_finished_spans()]
    complete = one(spans, "tether.setup.complete")
    assert complete["attributes"]["tether.integration.id"] == integration
    assert complete["attributes"]["tether.definition"] == "ops"
    assert "POST /v1/integrations/{integration_id}/credentials/{slot}" in ancestors(spans, complete)
    steps = [item["name"] for item in spans if item["parent_span_id"] == complete["span_id"]]
    assert steps == [
        "tether.setup.health_check",
        "tether.setup.resolve",
        "tether.setup.save",
        "tether.setup.first_connection",
    ]
    assert "ops-secret-traced" not in json.dumps(spans)


def _unsampled_parent_then_child(sampler: Any) -> tuple[Any, Any, list[str]]:
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

    memory = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracing.use(provider)
    try:
        dropped = NonRecordingSpan(SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(0)))
        with tracing.attached(set_span_in_context(dropped)), tracing.span("tether.child") as child:
            pass
    finally:
        tracing.use(None)
        provider.shutdown()
    return dropped, child, [item.name for item in memory.get_finished_spans()]


def test_under_a_dropped_trace_a_parent_based_sampler_makes_no_child_span() -> None:
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased

    # Parent-based (the SDK's default, every ``parentbased_*`` OTEL_TRACES_SAMPLER): the child would be dropped
    # too, so none is made; the block runs under the dropped parent.
    dropped, child, finished = _unsampled_parent_then_child(ParentBased(TraceIdRatioBased(0.5)))
    assert child is dropped and finished == []
    # A sampler that ignores the parent samples the child: it is made as before.
    dropped, child, finished = _unsampled_parent_then_child(ALWAYS_ON)
    assert child is not dropped and finished == ["tether.child"]
