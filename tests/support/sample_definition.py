"""A small, valid definition with one of every part: each registry test breaks exactly one rule of it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr

from engine import (
    Client,
    ClientContext,
    Connection,
    CredentialSlot,
    Definition,
    Emits,
    EndpointSecret,
    EventContext,
    Header,
    HmacSha256,
    Mapping,
    NoRevocation,
    OAuth2,
    OAuth2Token,
    Operation,
    OperationContext,
    OperatorConfig,
    Payload,
    Policy,
    Revoke,
    UserInput,
    Webhook,
    WebhookEvent,
)


class SampleOperatorConfig(OperatorConfig):
    client_id: str
    client_secret: SecretStr


class SampleInput(UserInput):
    project: str = "default"


class ApiToken(CredentialSlot):
    token: SecretStr


class OAuthGrant(OAuth2Token):
    pass


class SampleClient(Client):
    slots = (ApiToken, OAuthGrant)

    def build(self, ctx: ClientContext) -> Any:
        return ctx.credential


class HealthCheck(Operation):
    """Call the API once."""

    client = SampleClient
    policy = Policy.inline()

    async def run(self, ctx: OperationContext) -> dict[str, bool]:
        return {"ok": True}


class ItemSync(Operation):
    """Sync items."""

    client = SampleClient
    policy = Policy.queued(reconcile=True)
    emits = (Emits("asset", "item"),)

    async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        yield Payload("asset", {"id": "1", "name": "one"}, variant="item")


#: Every ``ItemUpdate`` that reached the "provider": the tier tests assert a refused call never got here.
UPDATES: list[str] = []


class ItemUpdateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str


class ItemUpdate(Operation):
    """Rename an item (changes provider data: the write tier)."""

    config = ItemUpdateConfig
    client = SampleClient
    policy = Policy.inline(access="write")

    async def run(self, ctx: OperationContext) -> dict[str, str]:
        UPDATES.append(ctx.config.name)  # type: ignore[attr-defined]
        return {"renamed": ctx.config.name}  # type: ignore[attr-defined]


class ApiKey(Connection):
    credential = ApiToken
    clients = (SampleClient,)
    validate = HealthCheck
    disconnect = NoRevocation("delete the token in the provider's settings")


class OAuth(Connection):
    credential = OAuthGrant
    clients = (SampleClient,)
    auth = OAuth2(
        slot=OAuthGrant,
        authorize_url="https://sample.example/oauth/authorize",
        token_url="https://sample.example/oauth/token",
        revoke_url="https://sample.example/oauth/revoke",
        scopes=("read",),
        upgrade_scopes=("read", "write"),
    )
    validate = HealthCheck
    disconnect = Revoke(OAuthGrant)


class ItemChanged(WebhookEvent):
    match = "item.changed"
    emits = (Emits("asset", "item"),)

    async def handle(self, ctx: EventContext) -> AsyncIterator[Payload]:
        yield Payload("asset", ctx.payload, variant="item")


class SampleHooks(Webhook):
    name = "sample.events"
    verifier = HmacSha256(header="X-Sample-Signature", prefix="sha256=", secret=EndpointSecret())
    event_type = Header("X-Sample-Event")
    delivery_id = Header("X-Sample-Delivery")
    events = (ItemChanged,)


ITEM_MAPPING = Mapping(
    schema="asset",
    variant="item",
    filter='payload.kind == "item"',
    map='{"source_identifier": payload.id, "name": payload.name, "asset_type": "item"}',
)

definition = Definition(
    id="sample",
    name="Sample",
    description="A provider that exists only in tests.",
    operator_config=SampleOperatorConfig,
    user_input=SampleInput,
    slots=(ApiToken, OAuthGrant),
    clients=(SampleClient,),
    connections=(ApiKey, OAuth),
    operations=(HealthCheck, ItemSync, ItemUpdate),
    webhooks=(SampleHooks,),
    mappings=(ITEM_MAPPING,),
)
