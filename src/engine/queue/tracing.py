"""The trace context through Dramatiq messages (no OpenTelemetry instrumentation is published for Dramatiq).

``TraceContext`` (first in the broker's middleware, so its ``after_process_message`` runs last, while the
``Retries`` middleware re-enqueues) injects the current trace context into the message's options on enqueue, under
a ``send`` producer span, and around the actor's execution makes a ``process`` consumer span, child of that context,
current in the worker thread. ``on_event_loop`` then carries it onto Dramatiq's event-loop thread, where async
actors run (the ``AsyncIO`` middleware's task starts from that thread's context, not the worker thread's). So a
queued run is one trace: API request → ``send`` → ``process`` → ``tether.run.execute`` → provider calls.

The option holds only the W3C ``traceparent``/``tracestate`` (and baggage) headers: IDs, never a secret. Off
(``engine.observability.tracing`` not configured), nothing is added to a message.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from engine.observability import tracing
from engine.queue.loophop import run_coroutine

#: The message option carrying the propagation headers.
OPTION = "trace_context"


class TraceContext(dramatiq.Middleware):
    def __init__(self) -> None:
        self._local = threading.local()

    def before_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message, delay: int | None) -> None:
        if not tracing.enabled():
            return
        carrier: dict[str, str] = {}
        if tracing.unsampled_parent() is not None:  # a dropped trace: no span (nor its attributes), its context sent
            propagate.inject(carrier)
            message.options[OPTION] = carrier
            return
        attributes = _attributes(message)
        if delay:
            attributes["messaging.dramatiq.delay_ms"] = int(delay)
        with tracing.span(f"{message.actor_name} send", attributes, kind=SpanKind.PRODUCER):
            propagate.inject(carrier)
        message.options[OPTION] = carrier

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        if not tracing.enabled():
            return
        carrier = message.options.get(OPTION)
        parent = propagate.extract(carrier) if isinstance(carrier, dict) else None
        dropped = tracing.unsampled_parent(parent) if parent is not None else None
        if dropped is not None:
            # The sender's trace was dropped: the sampler would drop this span too, so none is made; the sender's
            # context is current for the actor (logs keep its trace ID; children are skipped as under any).
            token = otel_context.attach(parent)
            self._stack().append((message.message_id, None, token))
            return
        attributes = _attributes(message)
        attributes["messaging.dramatiq.retries"] = int(message.options.get("retries", 0))
        span = tracing.tracer().start_span(
            f"{message.actor_name} process", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        self._stack().append((message.message_id, span, token))

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.Message,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        self._finish(message, exception)

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        self._finish(message, None, skipped=True)

    def _finish(self, message: dramatiq.Message, exception: BaseException | None, *, skipped: bool = False) -> None:
        stack = self._stack()
        if not stack or stack[-1][0] != message.message_id:
            return  # not ours (tracing was off when it started)
        _, span, token = stack.pop()
        if span is None:  # under a dropped trace (``before_process_message``)
            otel_context.detach(token)
            return
        if skipped:
            span.set_attribute("messaging.dramatiq.skipped", True)
        if isinstance(exception, dramatiq.Retry):
            span.set_attribute("tether.retry", True)  # the executor asked for another attempt: not an error
        elif exception is not None:
            tracing.fail(span, type(exception).__name__)
        span.end()
        otel_context.detach(token)

    def _stack(self) -> list[tuple[str, Any, object]]:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack


def _attributes(message: dramatiq.Message) -> dict[str, Any]:
    return {
        "messaging.system": "dramatiq",
        "messaging.destination.name": message.queue_name,
        "messaging.message.id": message.message_id,
    }


def on_event_loop(async_fn: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    """``async_fn`` as a synchronous actor function that runs it on Dramatiq's event-loop thread (what Dramatiq
    itself does for an ``async def`` actor, through the lighter ``engine.queue.loophop``) with the worker thread's
    trace context current there."""

    @functools.wraps(async_fn)
    def run(*args: Any) -> Any:
        loop_thread = get_event_loop_thread()
        if loop_thread is None:
            raise RuntimeError("the AsyncIO middleware is not in the broker's middleware stack")
        if not tracing.enabled():
            return run_coroutine(loop_thread, async_fn(*args))
        current = otel_context.get_current()

        async def in_context() -> Any:
            token = otel_context.attach(current)
            try:
                return await async_fn(*args)
            finally:
                otel_context.detach(token)

        return run_coroutine(loop_thread, in_context())

    return run
