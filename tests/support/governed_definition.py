"""A definition with a declared rate limit whose operation calls a local provider ``n`` times through an egress
client: what the governor tests charge to the budget (``engine.governor``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, SecretStr

from engine import (
    Client,
    ClientContext,
    Connection,
    CredentialSlot,
    Definition,
    NoRevocation,
    Operation,
    OperationContext,
    Policy,
    RateLimit,
)
from engine.kit.egress import egress_client
from engine.kit.providerkit import check_response

#: Four calls at once, then one every 1000 s: a test sees the budget run out and never refill.
LIMIT = RateLimit(per_second=0.001, burst=4)


class GovernedKey(CredentialSlot):
    key: SecretStr


class GovernedClient(Client):
    slots = (GovernedKey,)

    def build(self, ctx: ClientContext) -> Any:
        return egress_client(allow_loopback=True, timeout=10)


class CallsConfig(BaseModel):
    url: str
    n: int = 1


class Calls(Operation):
    """GET ``url`` ``n`` times; a 429 is the kit's ``RateLimited``."""

    client = GovernedClient
    config = CallsConfig
    policy = Policy.queued(max_retries=0)

    async def run(self, ctx: OperationContext) -> dict[str, int]:
        config: CallsConfig = ctx.config  # type: ignore[assignment]
        for _ in range(config.n):
            check_response(await ctx.client.get(config.url))
        return {"calls": config.n}


class GovernedConnection(Connection):
    credential = GovernedKey
    clients = (GovernedClient,)
    disconnect = NoRevocation("a test definition")


definition = Definition(
    id="governed",
    name="Governed",
    description="Calls a local provider under a declared rate limit.",
    slots=(GovernedKey,),
    clients=(GovernedClient,),
    connections=(GovernedConnection,),
    operations=(Calls,),
    rate_limit=LIMIT,
)
