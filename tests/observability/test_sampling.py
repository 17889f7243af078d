"""The default sampler and the roots ``tracing.span`` samples itself (``_RootSampling``): a new trace is kept at the
configured ratio, by the SDK's own rule on the trace ID (never sampled twice, which would keep ratio² of them), a
dropped one makes no span, and a caller's ``traceparent`` is followed whatever the ratio."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio, TraceIdRatioBased

from engine.observability import tracing
from engine.settings import Settings

LOW_BITS = TraceIdRatioBased.TRACE_ID_LIMIT


def _provider(ratio: float) -> tuple[TracerProvider, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBasedTraceIdRatio(ratio), id_generator=tracing.PrimedIds())
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider, memory


@pytest.fixture
def half() -> Iterator[InMemorySpanExporter]:
    provider, memory = _provider(0.5)
    tracing.use(provider)
    yield memory
    tracing.use(None)
    provider.shutdown()


def test_without_otel_traces_sampler_the_default_is_a_parent_based_ratio(monkeypatch) -> None:
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    default = tracing.sampler(Settings())
    assert isinstance(default, ParentBasedTraceIdRatio)
    assert default._root.rate == tracing.DEFAULT_SAMPLE_RATIO == 0.05
    # Named: the SDK's own (None lets the SDK read OTEL_TRACES_SAMPLER and its argument).
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_on")
    assert tracing.sampler(Settings()) is None


def test_new_traces_are_kept_at_the_ratio_by_the_trace_id_rule(half: InMemorySpanExporter) -> None:
    bound = TraceIdRatioBased.get_bound_for_rate(0.5)
    dropped = []
    for _ in range(400):
        with tracing.server_span("POST /v1/webhooks/{token}", {"x-github-event": "push"}) as current:
            tracing.event("tether.webhook.verify")
            with tracing.span("tether.child") as child:  # made only under a kept root
                assert (child is current) != current.is_recording()
            if not current.is_recording():
                dropped.append(current.get_span_context())
    kept = [item for item in half.get_finished_spans() if item.name == "POST /v1/webhooks/{token}"]
    children = [item for item in half.get_finished_spans() if item.name == "tether.child"]
    # Binomial(400, 0.5): 140..260 is over six standard deviations wide; ratio² (a second draw) would give ~100.
    assert 140 <= len(kept) <= 260 and len(kept) + len(dropped) == 400
    assert len(children) == len(kept) and {c.parent.span_id for c in children} == {k.context.span_id for k in kept}
    assert all(item.context.trace_id & LOW_BITS < bound for item in kept)
    assert all(context.trace_id & LOW_BITS >= bound and context.is_valid for context in dropped)
    assert all(not context.trace_flags.sampled for context in dropped)
    assert [event.name for event in kept[0].events] == ["tether.webhook.verify"]


def test_a_callers_sampled_trace_is_followed_whatever_the_ratio() -> None:
    provider, memory = _provider(0.0)
    tracing.use(provider)
    try:
        parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        for _ in range(20):
            with tracing.server_span("POST /v1/webhooks/{token}", {"traceparent": parent}):
                pass
        with tracing.server_span("POST /v1/webhooks/{token}", {}) as alone:  # a new trace at ratio 0: dropped
            assert not alone.is_recording() and alone.get_span_context().is_valid
    finally:
        tracing.use(None)
        provider.shutdown()
    finished = memory.get_finished_spans()
    assert len(finished) == 20
    assert {item.context.trace_id for item in finished} == {0x0AF7651916CD43DD8448EB211C80319C}
    assert {item.parent.span_id for item in finished} == {0xB7AD6B7169203331}


def test_a_message_of_a_dropped_trace_carries_it_and_its_worker_side_makes_no_span() -> None:
    from dramatiq import Message
    from opentelemetry import trace

    from engine.queue import worker as worker_module
    from engine.queue.tracing import OPTION

    provider, memory = _provider(0.0)  # every new trace dropped
    tracing.use(provider)
    broker = worker_module.build_broker("")
    try:
        with tracing.server_span("POST /v1/runs", {}) as request:
            message = Message(queue_name="q", actor_name="a", args=("r",), kwargs={}, options={})
            broker.emit_before("enqueue", message, None)
        sent = request.get_span_context()
        # The dropped trace's context travels (the worker follows the caller's decision), with no producer span:
        # flags 02, not sampled (01 clear), random trace ID (W3C level 2, as the SDK sets it).
        assert message.options[OPTION]["traceparent"] == f"00-{sent.trace_id:032x}-{sent.span_id:016x}-02"
        broker.emit_before("process_message", message)
        current = trace.get_current_span().get_span_context()
        assert (current.trace_id, current.span_id, current.is_remote) == (sent.trace_id, sent.span_id, True)
        with tracing.span("tether.run.execute") as run:  # under it, no child either
            assert not run.is_recording()
        broker.emit_after("process_message", message, result=None)
        assert not trace.get_current_span().get_span_context().is_valid  # detached again
    finally:
        broker.close()
        tracing.use(None)
        provider.shutdown()
    assert memory.get_finished_spans() == ()


def test_a_batch_links_only_the_sampled_traces_of_its_items(half: InMemorySpanExporter) -> None:
    captured = []
    for _ in range(60):
        with tracing.server_span("POST /v1/webhooks/{token}", {}):
            captured.append(tracing.capture())
    kept = {item.context.span_id for item in half.get_finished_spans()}
    assert 0 < len(kept) < 60
    linked = tracing.links(captured)
    # A dropped trace has no recorded span to point at: its context is left out.
    assert sorted(link.context.span_id for link in linked) == sorted(kept)
