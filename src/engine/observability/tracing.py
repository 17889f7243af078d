"""OpenTelemetry traces of this process (issue 23).

Off unless configured: ``configure`` (called once per process by the composition roots, ``tether serve`` and
``tether worker``) installs a tracer provider only when an exporter is asked for, through the standard
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (OTLP over HTTP; the exporter itself reads
the other ``OTEL_EXPORTER_OTLP_*`` variables, the SDK ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER`` and the
batch processor's knobs, the propagators ``OTEL_PROPAGATORS``) or ``TETHER_TRACE_FILE`` (JSON lines, one span a
line: local debugging and the tests' cross-process span trees). ``OTEL_SDK_DISABLED=true`` wins over both.

Off, every span is OpenTelemetry's no-op span: no provider, no exporter, no export thread, and ``tracer()`` is a
``NoOpTracer`` (a context-manager enter and exit per span).

The engine's spans use this module's provider rather than OpenTelemetry's global one, so a host app embedding the
engine keeps its own global provider and tests can swap ours (``use``).

Attribute rule (never a secret, never a URL path or query value): spans carry IDs (run, integration, delivery),
definition and operation names, HTTP methods, hosts and status codes, counts and outcome codes.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import (
    INVALID_SPAN,
    Link,
    NonRecordingSpan,
    NoOpTracer,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
)

from engine.settings import Settings

INSTRUMENTATION = "tether"

_lock = threading.Lock()
_configured = False
_tracer: Tracer = NoOpTracer()
_provider: Any = None  # opentelemetry.sdk.trace.TracerProvider once enabled (the SDK is imported only then)
#: Whether a child of an unsampled span is never sampled (the provider's sampler is parent-based and drops such
#: children, as every ``OTEL_TRACES_SAMPLER`` named ``parentbased_*`` and the SDK's default do): then ``span`` skips
#: making one at all (see there).
_children_follow_parent = False


def enabled() -> bool:
    return _provider is not None


def tracer() -> Tracer:
    return _tracer


def provider() -> Any:
    """The SDK tracer provider in use (``None`` when tracing is off): for instrumentations (FastAPI)."""
    return _provider


def configure(settings: Settings, *, service: str) -> bool:
    """Install this process's tracer provider if the settings ask for an exporter (once per process; later calls
    keep the first set-up). Returns whether tracing is on."""
    global _configured
    with _lock:
        if _configured:
            return enabled()
        _configured = True
        if settings.otel_sdk_disabled:
            return False
        processors = []
        if settings.otel_exporter_otlp_endpoint or settings.otel_exporter_otlp_traces_endpoint:
            if settings.trace_export == "process":
                # OTLP encoding costs ~50 µs of Python per span: in a child process, not under this one's GIL
                # (worth it where cores are free; TETHER_TRACE_EXPORT, docs/configuration.md).
                from engine.observability.span_shipping import ShippingSpanProcessor

                processors.append(ShippingSpanProcessor(service))
            else:
                from opentelemetry.sdk.trace.export import BatchSpanProcessor

                from engine.observability import otlp_encoding

                # The SDK's exporter, encoding without protobuf message objects (~3x cheaper: otlp_encoding).
                processors.append(BatchSpanProcessor(otlp_encoding.exporter()))
        if settings.trace_file:
            processors.append(file_processor(Path(settings.trace_file)))
        if not processors:
            return False
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider

        # OTEL_SERVICE_NAME, when set, names the service; else the process's role does (tether-server, tether-worker).
        attributes = {} if settings.otel_service_name else {"service.name": service}
        sdk_provider = TracerProvider(
            resource=Resource.create(attributes), sampler=sampler(settings), id_generator=PrimedIds()
        )
        for processor in processors:
            sdk_provider.add_span_processor(processor)
    use(sdk_provider)
    return True


#: The share of new traces recorded when ``OTEL_TRACES_SAMPLER`` is not set (docs/decisions.md): every span of a
#: traced delivery or run costs the process tens of µs (the SDK's span, the OTLP encoding), against a webhook
#: delivery's ~115-140 µs, so tracing every one kept 0.70-0.82 of a server's throughput; 10% kept 0.76-0.94 and
#: 5% 0.87-0.89 with less CPU per delivery (docs/benchmarks.md). A caller's decision (``traceparent``) is
#: followed either way: the sampler is parent-based.
DEFAULT_SAMPLE_RATIO = 0.05


def sampler(settings: Settings) -> Any:
    """The tracer provider's sampler: the SDK's own from ``OTEL_TRACES_SAMPLER`` when it is set (``None``: the SDK
    reads the variable and its argument), else ``parentbased_traceidratio`` at ``DEFAULT_SAMPLE_RATIO``."""
    if settings.otel_traces_sampler:
        return None
    from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio

    return ParentBasedTraceIdRatio(DEFAULT_SAMPLE_RATIO)


class PrimedIds:
    """The SDK's random IDs, except that a trace ID ``span`` has drawn already (to decide a root's sampling itself,
    see there) is the next one the SDK gets on this thread: so the SDK's sampler, given the same ID, agrees."""

    def __init__(self) -> None:
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

        self._random = RandomIdGenerator()
        self._primed = threading.local()
        self.generate_span_id = self._random.generate_span_id
        self.new_trace_id = self._random.generate_trace_id

    def prime(self, trace_id: int) -> None:
        self._primed.trace_id = trace_id

    def generate_trace_id(self) -> int:
        trace_id = getattr(self._primed, "trace_id", None)
        if trace_id is None:
            return self._random.generate_trace_id()
        self._primed.trace_id = None
        return trace_id

    def is_trace_id_random(self) -> bool:
        return True


#: Milliseconds between the JSON-lines file's exports. Each ended span is queued and written by the SDK's export
#: thread, not by the thread that ended it: a synchronous write per span put ~3 writes on every queued run's path
#: (bench queue's obs_ratio). A process killed outright loses at most this much of its last spans.
FILE_EXPORT_DELAY_MS = 100


def file_processor(path: Path) -> Any:
    """The span processor of ``TETHER_TRACE_FILE``: batched JSON lines appended to ``path``."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return BatchSpanProcessor(JsonLinesSpanExporter(path), schedule_delay_millis=FILE_EXPORT_DELAY_MS)


def shutdown() -> None:
    """Flush and stop the exporters (a process's orderly exit; the SDK also does it at interpreter exit)."""
    if _provider is not None:
        _provider.shutdown()


def use(sdk_provider: Any) -> None:
    """Trace with ``sdk_provider`` (``None``: off again). ``configure`` calls it; tests call it with a provider of
    their own (the SDK's in-memory exporter)."""
    global _tracer, _provider, _children_follow_parent, _fields, _roots
    _fields = tuple(sorted(field.lower() for field in propagate.get_global_textmap().fields))
    _provider = sdk_provider
    _tracer = sdk_provider.get_tracer(INSTRUMENTATION) if sdk_provider is not None else NoOpTracer()
    _children_follow_parent = sdk_provider is not None and _drops_unsampled_children(sdk_provider.sampler)
    _roots = _RootSampling.of(sdk_provider) if _children_follow_parent else None


class _RootSampling:
    """A new trace's sampling decided without the SDK's ``start_span`` when its root sampler is a trace-ID ratio
    (``parentbased_traceidratio``, the default): a dropped root is then a ``NonRecordingSpan`` made here (IDs and a
    context), where the SDK's path (sampler objects, its own span metrics, the sampling result) cost an unsampled
    webhook delivery ~3 µs more (bench webhooks). The rule is the SDK's (``TraceIdRatioBased``: the trace ID's low
    64 bits under the bound), and a kept root's trace ID is primed into the provider's ``PrimedIds``, so the SDK
    samples it with the same ID and the same answer."""

    __slots__ = ("bound", "ids")

    def __init__(self, bound: int, ids: PrimedIds) -> None:
        self.bound = bound
        self.ids = ids

    @classmethod
    def of(cls, sdk_provider: Any) -> _RootSampling | None:
        from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

        root = getattr(sdk_provider.sampler, "_root", None)
        ids = getattr(sdk_provider, "id_generator", None)
        if type(root) is TraceIdRatioBased and isinstance(ids, PrimedIds):
            return cls(root.bound, ids)
        return None

    def dropped(self) -> Span | None:
        """A new root: its non-recording span if the ratio drops it; else ``None`` with its trace ID primed."""
        trace_id = self.ids.new_trace_id()
        if trace_id & _TRACE_ID_LOW < self.bound:
            self.ids.prime(trace_id)
            return None
        return NonRecordingSpan(SpanContext(trace_id, self.ids.generate_span_id(), False, _DROPPED_ROOT_FLAGS))


_TRACE_ID_LOW = (1 << 64) - 1  # TraceIdRatioBased.TRACE_ID_LIMIT: the bits its decision reads
#: The flags the SDK gives a dropped root of random IDs (not sampled; W3C "random trace ID").
_DROPPED_ROOT_FLAGS = TraceFlags(TraceFlags.DEFAULT | TraceFlags.RANDOM_TRACE_ID)
_roots: _RootSampling | None = None


def _drops_unsampled_children(sampler: Any) -> bool:
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

    return (
        isinstance(sampler, ParentBased)
        and getattr(sampler, "_local_parent_not_sampled", None) is ALWAYS_OFF
        and getattr(sampler, "_remote_parent_not_sampled", None) is ALWAYS_OFF
    )


def unsampled_parent(context: otel_context.Context | None = None) -> Span | None:
    """The span of ``context`` (default: the current one) if it is a valid, unsampled one whose children the
    sampler would drop, else ``None``: a caller may then skip making a child (and its attributes) altogether."""
    if not _children_follow_parent:
        return None
    current = trace.get_current_span(context)
    context = current.get_span_context()
    return current if context.is_valid and not context.trace_flags.sampled else None


class span:  # used as the function it replaced was: ``with tracing.span(name) as current:``
    """A span current for the block; an exception escaping it marks it failed with the exception's stable code
    (``code`` of engine errors, else the class name). The exception's message is not recorded: it may quote a
    provider's response.

    Under an unsampled span (a ratio sampler dropped the trace) the block runs with that span current instead of a
    new one: the sampler would make the child a non-recording span too, and making it (IDs, the sampler, a context
    attached and detached) is most of what an unsampled trace costs a webhook delivery (issue 23's bench).

    A class rather than ``start_as_current_span``: that is three nested generator context managers per span, a
    measurable share of a traced delivery's time (py-spy of ``bench webhooks``); this is the same start, attach,
    detach and end.
    """

    __slots__ = ("_args", "_current", "_token")

    def __init__(
        self,
        name: str,
        attributes: Mapping[str, Any] | None = None,
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        links: Sequence[Link] | None = None,
        context: otel_context.Context | None = None,
    ) -> None:
        self._args = (name, attributes, kind, links, context)  # started on entry, as a ``with`` block expects

    def __enter__(self) -> Span:
        if _provider is None:  # off: nothing made current, the invalid (non-recording) span
            self._token = None
            return INVALID_SPAN
        name, attributes, kind, links, context = self._args
        unsampled = unsampled_parent() if context is None else None
        if unsampled is not None:
            self._current: Span = unsampled
            self._token: object = None
            return unsampled
        if _roots is not None and not links and not trace.get_current_span(context).get_span_context().is_valid:
            dropped = _roots.dropped()  # a new trace, decided here (``_RootSampling``)
            if dropped is not None:
                self._current = dropped
                self._token = otel_context.attach(trace.set_span_in_context(dropped, context))
                return dropped
        self._current = _tracer.start_span(
            name,
            context=context,
            kind=kind,
            attributes=attributes,
            links=links,
            record_exception=False,
            set_status_on_exception=False,
        )
        self._token = otel_context.attach(trace.set_span_in_context(self._current))
        return self._current

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if self._token is None:
            return
        otel_context.detach(self._token)  # type: ignore[arg-type]
        if exc is not None and self._current.is_recording():
            fail(self._current, error_code(exc))
        self._current.end()


def server_span(name: str, headers: Mapping[str, str], attributes: Mapping[str, Any] | None = None) -> span:
    """A request span for a route served outside FastAPI's stack, continuing the caller's trace if its headers
    (lower-case names) carry one (``traceparent``, or what ``OTEL_PROPAGATORS`` names). ``attributes`` default to
    the method and route read from ``name`` (``"POST /v1/webhooks/{token}"``)."""
    if attributes is None:
        attributes = _route_attributes.get(name)
        if attributes is None:
            method, _, route = name.partition(" ")
            attributes = {"http.request.method": method, "http.route": route}
            if len(_route_attributes) < 256:  # names are route templates: a handful
                _route_attributes[name] = attributes
    return span(name, attributes, kind=SpanKind.SERVER, context=incoming(headers))


#: ``server_span``'s default attributes by span name (read-only once made: the SDK copies what it is given).
_route_attributes: dict[str, Mapping[str, Any]] = {}


#: A context with nothing in it: the parent of a request that carries no trace (a new root, as ``extract`` makes).
_EMPTY = otel_context.Context()
#: The header names the installed propagators read (``OTEL_PROPAGATORS``; W3C ``traceparent``, ``tracestate`` and
#: ``baggage`` by default), read when a provider is installed (``use``).
_fields: tuple[str, ...] = ()


def incoming(headers: Mapping[str, str]) -> otel_context.Context:
    """The caller's trace context from request headers with lower-case names. Without any header the propagators
    read (most webhook senders send none), the empty context, without running them: the propagators' lookups
    were a measurable share of an unsampled delivery's cost (bench webhooks, docs/benchmarks.md)."""
    for field in _fields:
        if field in headers:
            return propagate.extract(headers)
    return _EMPTY


def error_code(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    return code if isinstance(code, str) and code else type(exc).__name__


def capture() -> Any:
    """The current trace context, to carry across a thread hop (``attached``); ``None`` when tracing is off."""
    return otel_context.get_current() if _provider is not None else None


def links(captured: Sequence[Any]) -> list[Link]:
    """Links to the spans current in ``capture``d contexts (work batched for several traces), the sampled ones
    only: a dropped trace has no span to point at, and a batch of ~25 webhook deliveries under a 10% sampler made
    ~23 links a batch (``Link`` objects, then their encoding) to spans that were never recorded."""
    found = []
    for item in captured:
        if item is not None:
            context = trace.get_current_span(item).get_span_context()
            if context.is_valid and context.trace_flags.sampled:
                found.append(Link(context))
    return found


#: What ``attached`` returns with nothing to attach: one shared, reusable no-op (no generator frame per message).
_OFF: AbstractContextManager[Any] = nullcontext()


def attached(captured: Any) -> AbstractContextManager[Any]:
    """Make a ``capture``d context current for the block (another thread's work on the caller's behalf)."""
    if captured is None:
        return _OFF
    return _Attached(captured)


class _Attached:
    """``attached``'s context manager: a class, not a generator (one per dispatched message: bench queue)."""

    __slots__ = ("_context", "_token")

    def __init__(self, context: otel_context.Context) -> None:
        self._context = context

    def __enter__(self) -> None:
        self._token = otel_context.attach(self._context)

    def __exit__(self, *_: object) -> None:
        otel_context.detach(self._token)


def annotate(**attributes: Any) -> None:
    """Set attributes on the current span (a no-op when tracing is off or there is none); ``None`` values skipped."""
    if _provider is None:
        return
    current = trace.get_current_span()
    if current.is_recording():
        current.set_attributes(
            {key.replace("__", "."): value for key, value in attributes.items() if value is not None}
        )


def event(name: str, **attributes: Any) -> None:
    """An event on the current span, when it records (``__`` in a key stands for ``.``; ``None`` values skipped):
    a step of the span's work that is cheaper as an instant on it than as a span of its own (a webhook delivery's
    verify and record)."""
    if _provider is None:
        return
    current = trace.get_current_span()
    if current.is_recording():
        current.add_event(
            name, {key.replace("__", "."): value for key, value in attributes.items() if value is not None} or None
        )


def fail(current: Span, code: str) -> None:
    """Mark ``current`` as failed with a stable error code (never an exception message: it may quote a secret)."""
    current.set_attribute("tether.error.code", code)
    current.set_status(Status(StatusCode.ERROR, code))


class JsonLinesSpanExporter:
    """Appends each finished span as one JSON line to a file (``TETHER_TRACE_FILE``): readable without a collector,
    and shared by processes (one ``write`` per span under ``O_APPEND``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd: int | None = None

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        data = "".join(json.dumps(span_record(item), separators=(",", ":")) + "\n" for item in spans).encode()
        with self._lock:
            # Opened once (O_APPEND: each write lands at the end whoever else appends), one write per export: with
            # an open and a close per span, a traced queued run cost ~3 of each (bench queue's obs_ratio).
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def span_record(item: Any) -> dict[str, Any]:
    """One finished SDK span as plain data (the JSON-lines exporter's line)."""
    context = item.get_span_context()
    parent = item.parent
    return {
        "name": item.name,
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_span_id": f"{parent.span_id:016x}" if parent is not None else None,
        "kind": item.kind.name,
        "service": item.resource.attributes.get("service.name"),
        "attributes": dict(item.attributes or {}),
        "status": item.status.status_code.name,
        "start": item.start_time,
        "end": item.end_time,
    }


def instrument_app(app: Any) -> None:
    """Request spans for a FastAPI app (OpenTelemetry's ASGI instrumentation), when tracing is on.

    Neither the path nor the query string reaches a span (an OAuth callback's ``code`` and ``state`` live in the
    query, a webhook endpoint's token in the path): the hook blanks the URL attributes the instrumentation sets from
    the raw request; the span's name and ``http.route`` carry the route template.
    """
    if not enabled():
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=_provider,
        server_request_hook=_without_query,
        exclude_spans=["receive", "send"],  # one span per request, not one per ASGI message
    )


def _without_query(current: Span, scope: Mapping[str, Any]) -> None:
    if not current.is_recording():
        return
    attributes = getattr(current, "attributes", None) or {}
    for key in ("http.url", "url.full"):
        if key in attributes:
            parts = urlsplit(str(attributes[key]))
            current.set_attribute(key, f"{parts.scheme}://{parts.netloc}")
    for key in ("http.target", "url.path", "url.query"):
        if key in attributes:
            current.set_attribute(key, "")
