"""The OTLP export from a child process (``engine.observability.span_shipping``): what a local OTLP/HTTP receiver
gets is the spans the process made, IDs, parents, events, links, status and resource included."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from engine.observability.span_shipping import ShippingSpanProcessor


class _Receiver(BaseHTTPRequestHandler):
    received: list[ExportTraceServiceRequest] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        assert self.path == "/v1/traces"
        type(self).received.append(ExportTraceServiceRequest.FromString(body))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


def test_spans_reach_the_otlp_receiver_through_the_child_process(monkeypatch) -> None:
    _Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    processor = ShippingSpanProcessor("tether-shipping-test")
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("tether")
    try:
        with tracer.start_as_current_span("request", kind=SpanKind.SERVER, attributes={"http.route": "/x"}) as root:
            root.add_event("tether.webhook.verify")
            root.add_event("tether.webhook.record", {"n": 2})
            other = root.get_span_context()
            with tracer.start_as_current_span("child", links=[Link(other, {"why": "batch"})]) as child:
                child.set_status(Status(StatusCode.ERROR, "boom_code"))
    finally:
        provider.shutdown()  # closes the child's input: it exports what it read, then exits
        server.shutdown()
    assert processor.shipped == 2 and processor.dropped == 0
    assert processor._child.returncode == 0
    spans = {
        span.name: span
        for request in _Receiver.received
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    }
    assert set(spans) == {"request", "child"}
    resource = _Receiver.received[0].resource_spans[0].resource
    assert {kv.key: kv.value.string_value for kv in resource.attributes}["service.name"] == "tether-shipping-test"
    assert _Receiver.received[0].resource_spans[0].scope_spans[0].scope.name == "tether"
    request, child = spans["request"], spans["child"]
    assert request.span_id == other.span_id.to_bytes(8, "big")
    assert request.trace_id == other.trace_id.to_bytes(16, "big") == child.trace_id
    assert child.parent_span_id == request.span_id and request.parent_span_id == b""
    assert [event.name for event in request.events] == ["tether.webhook.verify", "tether.webhook.record"]
    assert request.events[1].attributes[0].value.int_value == 2
    assert request.attributes[0].key == "http.route" and request.kind == 2  # SPAN_KIND_SERVER
    assert child.links[0].span_id == request.span_id and child.links[0].attributes[0].value.string_value == "batch"
    assert child.status.code == 2 and child.status.message == "boom_code"  # STATUS_CODE_ERROR
    assert child.start_time_unix_nano <= child.end_time_unix_nano
