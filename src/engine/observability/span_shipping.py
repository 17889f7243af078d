"""OTLP export of this process's spans from a child process (issue 23's overhead target).

The SDK's ``BatchSpanProcessor`` encodes spans to OTLP protobuf in a thread of the traced process: ~50 µs of
Python per span on the 2-core bench machine, under the same GIL as the event loop serving requests (a quarter of a
traced webhook server's time, py-spy of ``python -m bench webhooks``). ``ShippingSpanProcessor`` keeps only the
cheap part here: each ended span is queued; a thread turns a batch into plain tuples and writes it, pickled (C
code), to the stdin of a child process (``python -m engine.observability.span_shipping``) that rebuilds the spans
and exports them with the SDK's ``OTLPSpanExporter`` (``otlp_encoding``'s encoder), which reads the standard
``OTEL_EXPORTER_OTLP_*`` variables there as it would here (the child inherits the environment).

Bounded as the SDK's processor is: ``OTEL_BSP_MAX_QUEUE_SIZE`` spans wait at most (more are dropped and counted),
``OTEL_BSP_MAX_EXPORT_BATCH_SIZE`` go in one frame, ``OTEL_BSP_SCHEDULE_DELAY`` ms at most between frames. If the
child dies, spans are dropped (one warning) rather than the server slowed. The child ends when its stdin closes
(the parent's ``shutdown`` or death), after exporting what it read.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Sequence
from typing import IO, Any

from opentelemetry.sdk.trace import SpanProcessor

log = logging.getLogger(__name__)

_FRAME = struct.Struct("!I")  # a frame: its length, then a pickled list of span tuples


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


class ShippingSpanProcessor(SpanProcessor):
    """A span processor (the SDK's interface) handing ended spans to the child exporter process."""

    def __init__(self, service: str, *, command: Sequence[str] | None = None) -> None:
        self.max_queue = _env_int("OTEL_BSP_MAX_QUEUE_SIZE", 2048)
        self.max_batch = _env_int("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)
        self.delay = _env_int("OTEL_BSP_SCHEDULE_DELAY", 5000) / 1000
        self.shipped = self.dropped = 0
        self._queue: deque[Any] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._broken = False
        # The child finds the engine where this process did (an editable install, or a PYTHONPATH of a checkout).
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        argv = list(command or [sys.executable, "-m", "engine.observability.span_shipping", service])
        self._child = subprocess.Popen(argv, stdin=subprocess.PIPE, env=env)
        self._thread = threading.Thread(target=self._run, name="tether-span-shipper", daemon=True)
        self._thread.start()

    # -- the SDK's SpanProcessor interface ---------------------------------------------------------------------
    def on_start(self, span: Any, parent_context: Any = None) -> None:
        return None

    def on_end(self, span: Any) -> None:
        if not span.context.trace_flags.sampled:
            return
        if len(self._queue) >= self.max_queue:
            self.dropped += 1
            return
        self._queue.append(span)  # deque.append is atomic: no lock on the request's path
        if len(self._queue) >= self.max_batch:
            with self._cond:
                self._cond.notify()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        with self._cond:
            self._cond.notify()
        return True

    def shutdown(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout=10)
        stdin = self._child.stdin
        if stdin is not None and not stdin.closed:
            with contextlib.suppress(OSError):  # the child is gone already: nothing left to tell it
                stdin.close()
        try:
            self._child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            log.warning("span exporter process did not finish in 30 s; stopping it")
            self._child.kill()

    # -- the shipping thread ---------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._stopping and len(self._queue) < self.max_batch:
                    self._cond.wait(self.delay)
                stopping = self._stopping
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
                self._ship(batch)
            if stopping:
                return

    def _ship(self, batch: list[Any]) -> None:
        if self._broken:
            self.dropped += len(batch)
            return
        data = pickle.dumps([span_tuple(item) for item in batch], protocol=pickle.HIGHEST_PROTOCOL)
        stdin: IO[bytes] | None = self._child.stdin
        try:
            assert stdin is not None
            stdin.write(_FRAME.pack(len(data)) + data)
            stdin.flush()
            self.shipped += len(batch)
        except (BrokenPipeError, OSError, ValueError) as exc:
            self._broken = True
            self.dropped += len(batch)
            log.warning("span exporter process is gone (%s); further spans are dropped", type(exc).__name__)


def span_tuple(span: Any) -> tuple[Any, ...]:
    """An ended SDK span as plain, picklable data (``rebuild`` reverses it)."""
    context = span.context
    parent = span.parent
    scope = span.instrumentation_scope
    return (
        span.name,
        context.trace_id,
        context.span_id,
        int(context.trace_flags),
        list(context.trace_state.items()) if context.trace_state else None,
        (parent.span_id, parent.is_remote) if parent is not None else None,
        span.kind.value,
        span.start_time,
        span.end_time,
        dict(span.attributes) if span.attributes else None,
        [(e.name, e.timestamp, dict(e.attributes) if e.attributes else None) for e in span.events] or None,
        [
            (link.context.trace_id, link.context.span_id, int(link.context.trace_flags), dict(link.attributes or {}))
            for link in span.links
        ]
        or None,
        span.status.status_code.value,
        span.status.description,
        (scope.name, scope.version) if scope is not None else None,
    )


def rebuild(item: tuple[Any, ...], resource: Any) -> Any:
    """A ``ReadableSpan`` from ``span_tuple``'s data (in the child process)."""
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

    (name, trace_id, span_id, flags, state, parent, kind, start, end, attributes, events, links, code, description,
     scope) = item  # fmt: skip
    trace_state = TraceState(state) if state else None
    return ReadableSpan(
        name=name,
        context=SpanContext(trace_id, span_id, False, TraceFlags(flags), trace_state),
        parent=SpanContext(trace_id, parent[0], parent[1], TraceFlags(flags)) if parent else None,
        resource=resource,
        attributes=attributes,
        events=[Event(n, a, timestamp=t) for n, t, a in events or ()],
        links=[Link(SpanContext(t, s, True, TraceFlags(f)), a) for t, s, f, a in links or ()],
        kind=SpanKind(kind),
        status=Status(StatusCode(code), description),
        start_time=start,
        end_time=end,
        instrumentation_scope=InstrumentationScope(*scope) if scope else None,
    )


def main(service: str, source: IO[bytes]) -> None:
    """The child: read frames until end of input, export each as one OTLP request."""
    from opentelemetry.sdk.resources import Resource

    from engine.observability import otlp_encoding

    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": service}
    resource = Resource.create(attributes)
    exporter = otlp_encoding.exporter()
    try:
        while True:
            header = source.read(_FRAME.size)
            if len(header) < _FRAME.size:
                return
            (size,) = _FRAME.unpack(header)
            data = source.read(size)
            if len(data) < size:
                return
            spans = [rebuild(item, resource) for item in pickle.loads(data)]  # our own parent's frames
            result = exporter.export(spans)
            if result.name != "SUCCESS":
                log.warning("OTLP export of %d spans failed", len(spans))
    finally:
        exporter.shutdown()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main(sys.argv[1] if len(sys.argv) > 1 else "tether", sys.stdin.buffer)
