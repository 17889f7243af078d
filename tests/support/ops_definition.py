"""A definition whose operations the execution tests control through their config: fail N times, return 429 with
a Retry-After, sleep, ingest a page of assets from a cursor. ``ctx.attempt`` is the run's attempt number,
so "fail the first N attempts" needs no shared state between worker processes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, SecretStr

from engine import (
    Client,
    ClientContext,
    Connection,
    CredentialSlot,
    Definition,
    Emits,
    Mapping,
    NoRevocation,
    Operation,
    OperationContext,
    Payload,
    Policy,
)
from engine.errors import ProviderError
from engine.kit.providerkit import RateLimited, TransientProviderError

log = logging.getLogger("support.ops")


class OpsToken(CredentialSlot):
    token: SecretStr


class OpsClient(Client):
    slots = (OpsToken,)

    def build(self, ctx: ClientContext) -> Any:
        return {"token": ctx.credential.token.get_secret_value()}  # type: ignore[attr-defined]


class EchoConfig(BaseModel):
    value: str = ""


class Ping(Operation):
    """Inline check."""

    client = OpsClient
    policy = Policy.inline()

    async def run(self, ctx: OperationContext) -> dict[str, bool]:
        return {"ok": bool(ctx.client["token"])}


class Echo(Operation):
    """Return the config (queued; also run inline by the tests)."""

    config = EchoConfig
    policy = Policy.queued(max_retries=2)

    async def run(self, ctx: OperationContext) -> dict[str, Any]:
        return {"echo": ctx.config.value, "n": 1}  # type: ignore[attr-defined]


class FlakyConfig(BaseModel):
    fail_times: int = 1


class Flaky(Operation):
    """Fail with a transient provider error on the first ``fail_times`` attempts."""

    config = FlakyConfig
    policy = Policy.queued(max_retries=3)

    async def run(self, ctx: OperationContext) -> dict[str, int]:
        attempt = ctx.attempt
        if attempt <= ctx.config.fail_times:  # type: ignore[attr-defined]
            raise TransientProviderError("the provider answered HTTP 503", provider_status=503)
        return {"attempt": attempt}


class Broken(Operation):
    """A permanent provider error whose message quotes the credential (it must be redacted)."""

    client = OpsClient
    policy = Policy.queued(max_retries=3)

    async def run(self, ctx: OperationContext) -> None:
        message = f"the provider refused token {ctx.client['token']}"
        log.warning("provider answered: %s", message)  # careless on purpose: the log sink must scrub it
        raise ProviderError(message, provider_status=400)


class LimitedConfig(BaseModel):
    limited_times: int = 1
    retry_after: float = 3.0


class Limited(Operation):
    """Answer 429 with Retry-After on the first ``limited_times`` attempts."""

    config = LimitedConfig
    policy = Policy.queued(max_retries=0)

    async def run(self, ctx: OperationContext) -> dict[str, int]:
        attempt = ctx.attempt
        if attempt <= ctx.config.limited_times:  # type: ignore[attr-defined]
            raise RateLimited(retry_after=ctx.config.retry_after)  # type: ignore[attr-defined]
        return {"attempt": attempt}


class SlowConfig(BaseModel):
    seconds: float = 30.0
    first_attempt_only: bool = True


class Slow(Operation):
    """Sleep (on the first attempt only, by default): something to kill a worker in the middle of."""

    config = SlowConfig
    policy = Policy.queued(max_retries=1)

    async def run(self, ctx: OperationContext) -> dict[str, int]:
        attempt = ctx.attempt
        if attempt == 1 or not ctx.config.first_attempt_only:  # type: ignore[attr-defined]
            await asyncio.sleep(ctx.config.seconds)  # type: ignore[attr-defined]
        return {"attempt": attempt}


class SlowOnce(Slow):
    """Like ``Slow`` with no retries: a lost worker ends the run ``stalled``."""

    policy = Policy.queued(max_retries=0)


class HangConfig(BaseModel):
    seconds: float = 60.0
    #: Catch the watchdog's cancellation and return as if done (an operation that swallows ``CancelledError``).
    swallow: bool = False


class Hang(Operation):
    """Wait without progress on the first attempt (a provider that accepts and never answers): its stall window
    stops it, and the retry returns."""

    config = HangConfig
    policy = Policy.queued(max_retries=1, stall_window=timedelta(seconds=0.5))

    async def run(self, ctx: OperationContext) -> dict[str, int]:
        if ctx.attempt == 1:
            try:
                await asyncio.sleep(ctx.config.seconds)  # type: ignore[attr-defined]
            except asyncio.CancelledError:
                if not ctx.config.swallow:  # type: ignore[attr-defined]
                    raise
        return {"attempt": ctx.attempt}


class HangOnce(Hang):
    """Like ``Hang`` with no retries: the run ends ``stalled``."""

    policy = Policy.queued(max_retries=0, stall_window=timedelta(seconds=0.5))


class BusyConfig(BaseModel):
    steps: int = 60
    step: float = 0.05


class Busy(Operation):
    """Works longer than its stall window in steps, saying after each that it made progress."""

    config = BusyConfig
    policy = Policy.queued(max_retries=0, stall_window=timedelta(seconds=1.5))

    async def run(self, ctx: OperationContext) -> dict[str, int]:
        for _ in range(ctx.config.steps):  # type: ignore[attr-defined]
            await asyncio.sleep(ctx.config.step)  # type: ignore[attr-defined]
            ctx.progress()
        return {"steps": ctx.config.steps}  # type: ignore[attr-defined]


class SyncConfig(BaseModel):
    count: int = 3
    fail: bool = False


class AssetSync(Operation):
    """Ingest ``count`` assets after the cursor; ``fail`` raises after yielding them (nothing is committed)."""

    config = SyncConfig
    policy = Policy.queued(reconcile=True, max_retries=0)
    emits = (Emits("asset", "thing"),)

    async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        start = int(ctx.cursor or 0)
        count = ctx.config.count  # type: ignore[attr-defined]
        for i in range(start, start + count):
            yield Payload("asset", {"id": f"a{i}", "name": f"asset {i}"}, variant="thing")
        if ctx.config.fail:  # type: ignore[attr-defined]
            raise ProviderError("the provider dropped the connection mid-page", provider_status=400)
        ctx.next_cursor = start + count


class Tick(Operation):
    """A scheduled no-op."""

    policy = Policy.queued(schedule=timedelta(hours=1))

    async def run(self, ctx: OperationContext) -> dict[str, bool]:
        return {"ticked": True}


class OpsKey(Connection):
    credential = OpsToken
    clients = (OpsClient,)
    validate = Ping
    disconnect = NoRevocation("delete the token by hand")


definition = Definition(
    id="ops",
    name="Ops",
    description="Controllable operations for the execution tests.",
    slots=(OpsToken,),
    clients=(OpsClient,),
    connections=(OpsKey,),
    operations=(Ping, Echo, Flaky, Broken, Limited, Slow, SlowOnce, Hang, HangOnce, Busy, AssetSync, Tick),
    mappings=(
        Mapping(
            schema="asset",
            variant="thing",
            map='{"source_identifier": payload.id, "name": payload.name, "asset_type": "thing"}',
        ),
    ),
)
