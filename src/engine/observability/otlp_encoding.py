"""OTLP trace export requests encoded directly to protobuf bytes (issue 23's overhead target).

The SDK's ``encode_spans`` builds a tree of protobuf message objects per span (a message per attribute, per value,
per event) and serializes it: 50-60 µs of Python per span on the 2-core bench machine, in a thread sharing the GIL
with the requests (docs/benchmarks.md). ``encode_request`` writes the same ``ExportTraceServiceRequest`` bytes
straight from the SDK's ``ReadableSpan`` fields: fields in field-number order as protobuf serializes them, proto3
defaults left out, the resource and scope encoded once per batch and attribute keys once per process. The tests
check it byte for byte against ``encode_spans`` and parse it with opentelemetry-proto.

Field numbers: opentelemetry/proto/trace/v1/trace.proto, common/v1/common.proto, resource/v1/resource.proto and
collector/trace/v1/trace_service.proto.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.trace import SpanKind, StatusCode

_log = logging.getLogger(__name__)
_DOUBLE = struct.Struct("<d")
_FIXED64 = struct.Struct("<Q")
_FIXED32 = struct.Struct("<I")
#: Span.flags / Link.flags: SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK, plus SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK.
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200
_SMALL = [bytes((n,)) for n in range(128)]


def _varint(value: int) -> bytes:
    if value < 128:
        return _SMALL[value] if value >= 0 else _varint(value & 0xFFFFFFFFFFFFFFFF)  # int64: two's complement
    out = bytearray()
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _tag(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _len(field: int, payload: bytes) -> bytes:
    """A length-delimited field (string, bytes, message)."""
    return _tag(field, 2) + _varint(len(payload)) + payload


# Tags used per span, written once.
_T_TRACE_ID = _tag(1, 2) + _SMALL[16]
_T_SPAN_ID = _tag(2, 2) + _SMALL[8]
_T_PARENT_ID = _tag(4, 2) + _SMALL[8]
_T_KIND = _tag(6, 0)
_T_START = _tag(7, 1)
_T_END = _tag(8, 1)
_T_FLAGS = _tag(16, 5)
_T_EVENT_TIME = _tag(1, 1)
_T_LINK_FLAGS = _tag(6, 5)
_T_STATUS_CODE = _tag(3, 0)
#: OTLP's SpanKind is the SDK's plus one (0 is SPAN_KIND_UNSPECIFIED); StatusCode values are OTLP's own.
_KINDS = {kind: _T_KIND + _SMALL[kind.value + 1] for kind in SpanKind}
_CODES = {code: _T_STATUS_CODE + _SMALL[code.value] if code.value else b"" for code in StatusCode}
_ATTRIBUTE_TAGS = {field: _tag(field, 2) for field in (1, 3, 4, 9)}


def _value(value: Any) -> bytes:
    """An ``AnyValue`` message's bytes (a oneof: its member is written even when it is the default)."""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _len(1, value.encode())
    if isinstance(value, int):
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + _DOUBLE.pack(value)
    if isinstance(value, bytes):
        return _len(7, value)
    if value is None:
        return b""
    if isinstance(value, Sequence):
        return _len(5, b"".join(_len(1, _value(item)) for item in value))
    if isinstance(value, Mapping):
        return _len(6, b"".join(_len(1, _key_value(str(k), v)) for k, v in value.items()))
    raise TypeError(f"attribute value of type {type(value).__name__}")


_keys: dict[str, bytes] = {}


def _key_value(key: str, value: Any) -> bytes:
    prefix = _keys.get(key)
    if prefix is None:
        prefix = _len(1, key.encode())
        if len(_keys) < 4096:  # attribute keys are a small fixed set; bounded all the same
            _keys[key] = prefix
    return prefix + _len(2, _value(value))


def _attributes(field: int, attributes: Mapping[str, Any] | None) -> bytes:
    if not attributes:
        return b""
    tag = _ATTRIBUTE_TAGS[field]
    out = []
    for key, value in attributes.items():
        if type(value) is str and key in _keys:  # the common case, inlined: a known key, a string value
            data = value.encode()
            size = len(data)
            if size < 126:  # the AnyValue and its KeyValue.value field each fit a one-byte length
                prefix = _keys[key]
                size_byte = _SMALL[size]
                pair_size = len(prefix) + size + 4
                out += (tag, _varint(pair_size), prefix, b"\x12", _SMALL[size + 2], b"\x0a", size_byte, data)
                continue
        pair = _key_value(key, value)
        out += (tag, _varint(len(pair)), pair)
    return b"".join(out)


def _flags(parent: Any) -> bytes:
    return _FIXED32.pack(_HAS_IS_REMOTE | _IS_REMOTE if parent is not None and parent.is_remote else _HAS_IS_REMOTE)


def _trace_state(state: Any) -> str:
    return ",".join(f"{key}={value}" for key, value in state.items()) if state is not None else ""


def encode_span(span: Any) -> bytes:
    """One ``Span`` message's bytes from an SDK ``ReadableSpan``."""
    context = span.context
    parent = span.parent
    out = [_T_TRACE_ID, context.trace_id.to_bytes(16, "big"), _T_SPAN_ID, context.span_id.to_bytes(8, "big")]
    state = _trace_state(context.trace_state)
    if state:
        out.append(_len(3, state.encode()))
    if parent is not None:
        out += (_T_PARENT_ID, parent.span_id.to_bytes(8, "big"))
    out += (_len(5, span.name.encode()), _KINDS[span.kind])
    if span.start_time:
        out += (_T_START, _FIXED64.pack(span.start_time))
    if span.end_time:
        out += (_T_END, _FIXED64.pack(span.end_time))
    out.append(_attributes(9, span.attributes))
    if span.dropped_attributes:
        out += (_tag(10, 0), _varint(span.dropped_attributes))
    for event in span.events:
        body = b""
        if event.timestamp:
            body = _T_EVENT_TIME + _FIXED64.pack(event.timestamp)
        if event.name:
            body += _len(2, event.name.encode())
        body += _attributes(3, event.attributes)
        if event.dropped_attributes:
            body += _tag(4, 0) + _varint(event.dropped_attributes)
        out.append(_len(11, body))
    if span.dropped_events:
        out += (_tag(12, 0), _varint(span.dropped_events))
    for link in span.links:
        linked = link.context
        body = _T_TRACE_ID + linked.trace_id.to_bytes(16, "big") + _T_SPAN_ID + linked.span_id.to_bytes(8, "big")
        body += _attributes(4, link.attributes)
        if link.dropped_attributes:
            body += _tag(5, 0) + _varint(link.dropped_attributes)
        out.append(_len(13, body + _T_LINK_FLAGS + _flags(linked)))
    if span.dropped_links:
        out += (_tag(14, 0), _varint(span.dropped_links))
    status = span.status
    if status is not None:
        body = _len(2, status.description.encode()) if status.description else b""
        out.append(_len(15, body + _CODES[status.status_code]))
    out += (_T_FLAGS, _flags(parent))
    return b"".join(out)


def _scope(scope: Any) -> bytes:
    """An ``InstrumentationScope`` message's bytes (empty for none, as the SDK's encoder writes it)."""
    if scope is None:
        return b""
    body = _len(1, scope.name.encode()) if scope.name else b""
    if scope.version:
        body += _len(2, scope.version.encode())
    return body + _attributes(3, scope.attributes)


def encode_request(spans: Sequence[Any]) -> bytes:
    """An ``ExportTraceServiceRequest``'s bytes: the spans grouped by resource, then by instrumentation scope, in
    the order each first appears, as ``encode_spans`` groups them, but by identity (one provider's spans share
    its resource and tracers' scopes; ``Resource.__hash__`` serializes the attributes to JSON on every call)."""
    grouped: dict[int, tuple[Any, dict[int, tuple[Any, list[bytes]]]]] = {}
    for span in spans:
        resource = span.resource
        scope = span.instrumentation_scope or None
        scopes = grouped.get(id(resource))
        if scopes is None:
            scopes = grouped[id(resource)] = (resource, {})
        entry = scopes[1].get(id(scope))
        if entry is None:
            entry = scopes[1][id(scope)] = (scope, [])
        entry[1].append(encode_span(span))
    out = []
    for resource, scopes in grouped.values():
        body = _len(1, _attributes(1, resource.attributes))
        for scope, encoded in scopes.values():
            scope_spans = _len(1, _scope(scope)) + b"".join(_len(2, item) for item in encoded)
            if scope is not None and scope.schema_url:
                scope_spans += _len(3, scope.schema_url.encode())
            body += _len(2, scope_spans)
        if resource.schema_url:
            body += _len(3, resource.schema_url.encode())
        out.append(_len(1, body))
    return b"".join(out)


def exporter() -> Any:
    """The SDK's OTLP/HTTP span exporter (endpoint, headers, compression, timeouts and retries from the standard
    ``OTEL_EXPORTER_OTLP_*`` variables, as before), encoding with ``encode_request``."""
    from opentelemetry.exporter.otlp.proto.http._common import RequestPayloadTooLargeError, _is_request_too_large
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    class DirectOTLPSpanExporter(OTLPSpanExporter):
        # The SDK's ``export`` with ``encode_request`` in place of ``encode_spans(...).SerializePartialToString()``:
        # the same size limit, self-metrics and HTTP client.
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            if self._shutdown:
                return SpanExportResult.FAILURE
            with self._metrics.export_operation(len(spans)) as result:
                try:
                    data = encode_request(spans)
                except Exception as error:  # a value the encoder does not know: the batch is lost, logged once
                    _log.error("Failed to encode span batch: %s", type(error).__name__)
                    result.error = error
                    return SpanExportResult.FAILURE
                if _is_request_too_large(data, self._max_request_size):
                    _log.warning("Dropping span batch: %d bytes exceeds the OTLP request size limit", len(data))
                    result.error = RequestPayloadTooLargeError(f"span request of {len(data)} bytes")
                    return SpanExportResult.FAILURE
                answer = self._client.export(data)
                if not answer.success:
                    result.error = answer.error
                    return SpanExportResult.FAILURE
            return SpanExportResult.SUCCESS

    return DirectOTLPSpanExporter()
