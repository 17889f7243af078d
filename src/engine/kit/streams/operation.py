"""A stream as an operation of a definition: ``stream_operation(spec, client=…)`` and its ``stream_mapping``.

The class it returns is an ordinary ingest ``Operation`` (named ``spec.name``, the stable ID), so the registry
checks it like any other (emits a known schema, a mapping covers it) and the executor runs it on the one path.
A Python definition can use it as it is, or run a ``StreamRunner`` inside an ``ingest`` of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from engine.authoring.mappings import Mapping
from engine.authoring.operations import Checkpoint, Emits, Operation, OperationContext, Payload, Policy
from engine.kit.streams.runner import StreamRunner
from engine.kit.streams.spec import StreamSpec

if TYPE_CHECKING:
    from engine.authoring.clients import Client


def stream_operation(
    spec: StreamSpec,
    *,
    client: type[Client],
    base_url: str = "",
    provider: str = "the provider",
    module: str = __name__,
) -> type[Operation]:
    """An ingest operation class that runs ``spec`` with ``client`` (which must be egress-guarded)."""
    runner = StreamRunner(spec, base_url=base_url, provider=provider)
    schedule = timedelta(minutes=spec.schedule_minutes) if spec.schedule_minutes else None

    async def ingest(self: Operation, ctx: OperationContext) -> AsyncIterator[Payload | Checkpoint]:
        async for item in runner.run(ctx):
            yield item

    attrs: dict[str, Any] = {
        "__doc__": spec.description or f"Stream {spec.name}: {provider}'s records into {spec.schema_name}.",
        "__module__": module,
        "client": client,
        "policy": Policy.queued(reconcile=spec.reconcile, schedule=schedule),
        "emits": (Emits(spec.schema_name, spec.variant),),
        "ingest": ingest,
        "runner": runner,
    }
    return cast(type[Operation], type(spec.name, (Operation,), attrs))


def stream_mapping(spec: StreamSpec) -> Mapping:
    """The CEL mapping a stream declares, for the definition's ``mappings``."""
    return Mapping(schema=spec.schema_name, variant=spec.variant, filter=spec.filter, map=spec.map)
