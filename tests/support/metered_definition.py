"""A definition whose operations produce each outcome the metrics count: a success, a failure, an ingest batch
with one rejected payload (no ``id``: its mapping yields no source identifier) and a request the egress guard
refuses (a private address, refused before anything is sent)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from engine import (
    Connection,
    Definition,
    Emits,
    NoRevocation,
    Operation,
    OperationContext,
    Payload,
    Policy,
)
from engine.errors import ProviderError
from engine.kit.egress import egress_client
from support import ops_definition as ops
from support.ops_definition import OpsClient, OpsToken

#: Private (RFC 1918): the guard refuses it whatever the loopback setting.
REFUSED_URL = "https://10.0.0.1/v1/items"


class Works(Operation):
    policy = Policy.queued(max_retries=0)

    async def run(self, ctx: OperationContext) -> dict[str, bool]:
        return {"ok": True}


class Fails(Operation):
    policy = Policy.queued(max_retries=0)

    async def run(self, ctx: OperationContext) -> None:
        raise ProviderError("the provider refused the request", provider_status=400)


class Reaches(Operation):
    """Calls a private address: the egress guard refuses it and the run fails with ``egress_refused``."""

    policy = Policy.queued(max_retries=0)

    async def run(self, ctx: OperationContext) -> None:
        async with egress_client() as client:
            await client.get(REFUSED_URL)


class Mixed(Operation):
    """Two good assets and one without an ``id`` (rejected, with its reason, by the pipeline)."""

    policy = Policy.queued(max_retries=0)
    emits = (Emits("asset", "thing"),)

    async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        yield Payload("asset", {"id": "m1", "name": "one"}, variant="thing")
        yield Payload("asset", {"id": "m2", "name": "two"}, variant="thing")
        yield Payload("asset", {"name": "no id"}, variant="thing")


class MeteredKey(Connection):
    credential = OpsToken
    clients = (OpsClient,)
    disconnect = NoRevocation("delete the token by hand")


definition = Definition(
    id="metered",
    name="Metered",
    description="Operations with known outcomes for the metrics tests.",
    slots=(OpsToken,),
    clients=(OpsClient,),
    connections=(MeteredKey,),
    operations=(Works, Fails, Reaches, Mixed),
    mappings=ops.definition.mappings,  # the asset mapping: ``source_identifier`` is ``payload.id``
)
