"""``engine.observability.otlp_encoding``: the OTLP request it writes is byte for byte the SDK's ``encode_spans``
output for the same spans (every field the engine's spans use: remote and local parents, trace state, kinds,
attribute types, events with and without attributes, links, each status), and what a local OTLP/HTTP receiver gets
from the exporter parses with opentelemetry-proto into those spans."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry import propagate
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from engine.observability import otlp_encoding


def _spans(resource: Resource | None = None) -> list[Any]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(**({"resource": resource} if resource else {}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tether = provider.get_tracer("tether")
    other = provider.get_tracer("other", "1.2", schema_url="https://example.test/schema")
    remote = propagate.extract(
        {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate": "a=1,b=2"}
    )
    for i in range(12):
        kind = list(SpanKind)[i % len(SpanKind)]
        with tether.start_as_current_span(
            "POST /v1/webhooks/{token}", context=remote if i % 2 else None, kind=kind
        ) as request:
            request.set_attributes(
                {
                    "tether.delivery.id": f"del_{i:04d}" * (1 + 20 * (i == 3)),  # one value past a 1-byte length
                    "tether.webhook.duplicate": bool(i % 3),
                    "http.response.status_code": 202,
                    "negative": -5 - i,
                    "big": 2**40 + i,
                    "ratio": 0.25 * i,
                    "hosts": ["a.example", "b.example"],
                    "codes": [200, -1],
                    "empty": "",
                    "zero": 0,
                    "unicode": "délivré ✓",
                }
            )
            request.add_event("tether.webhook.verify")
            request.add_event("tether.webhook.record", {"n": i, "tether.error.code": "signature_invalid"})
            with other.start_as_current_span("child", links=[Link(request.get_span_context(), {"why": "batch"})]) as c:
                if i % 3 == 0:
                    c.set_status(Status(StatusCode.ERROR, "boom_code"))
                elif i % 3 == 1:
                    c.set_status(Status(StatusCode.OK))
    provider.shutdown()
    return list(memory.get_finished_spans())


def test_the_request_is_byte_for_byte_the_sdks() -> None:
    spans = _spans()
    assert len(spans) == 24
    assert otlp_encoding.encode_request(spans) == encode_spans(spans).SerializeToString()
    for span in spans:
        assert otlp_encoding.encode_request([span]) == encode_spans([span]).SerializeToString()
    # Two resources (two providers) and their scopes, as the SDK groups them.
    mixed = spans[:5] + _spans(Resource.create({"service.name": "tether-worker"}))[:5] + spans[5:9]
    assert otlp_encoding.encode_request(mixed) == encode_spans(mixed).SerializeToString()


class _Receiver(BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self) -> None:
        type(self).received.append(self.rfile.read(int(self.headers.get("content-length", "0"))))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


def test_the_exporter_sends_them_to_the_otlp_endpoint(monkeypatch) -> None:
    _Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    spans = _spans()
    exporter = otlp_encoding.exporter()
    try:
        assert exporter.export(spans).name == "SUCCESS"
    finally:
        exporter.shutdown()
        server.shutdown()
    [body] = _Receiver.received
    request = ExportTraceServiceRequest.FromString(body)
    names = [span.name for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]
    assert sorted(names) == sorted(span.name for span in spans)
    assert body == encode_spans(spans).SerializeToString()
