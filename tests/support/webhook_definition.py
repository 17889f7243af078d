"""A definition with one webhook per verification scheme, for the webhook suite (``tests/webhooks``).

Handlers record what they saw in ``SEEN`` so a test can count how many times a delivery was really processed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pydantic import SecretStr

from engine import (
    BearerToken,
    CelValue,
    Definition,
    Emits,
    EndpointSecret,
    EventContext,
    Header,
    HmacSha256,
    JsonField,
    Mapping,
    Operation,
    OperationContext,
    OperatorConfig,
    OperatorSecret,
    Payload,
    Policy,
    SlackSignature,
    StandardWebhooks,
    StripeSignature,
    Webhook,
    WebhookEvent,
)

SEEN: list[tuple[str, str | None]] = []
REGISTERED: list[tuple[str, str]] = []
UNREGISTERED: list[str] = []


class HooksConfig(OperatorConfig):
    slack_signing_secret: SecretStr
    app_webhook_secret: SecretStr


class Refresh(Operation):
    """Re-read one item (dispatched by a webhook event)."""

    policy = Policy.queued()

    async def run(self, ctx: OperationContext) -> dict[str, bool]:
        return {"ok": True}


class ItemChanged(WebhookEvent):
    match = "item.changed"
    emits = (Emits("asset", "item"),)

    async def handle(self, ctx: EventContext) -> AsyncIterator[Payload]:
        SEEN.append((type(self).__name__, ctx.delivery_id))
        item = ctx.payload.get("item") or {}
        yield Payload("asset", item, variant="item", action="changed")


class ItemDeleted(WebhookEvent):
    """Dispatches an operation instead of emitting."""

    match = "item.deleted"

    async def handle(self, ctx: EventContext) -> AsyncIterator[Payload]:
        SEEN.append((type(self).__name__, ctx.delivery_id))
        await ctx.dispatch(Refresh, {"id": ctx.payload.get("id")})
        return
        yield


class Explodes(WebhookEvent):
    match = "item.explodes"

    async def handle(self, ctx: EventContext) -> AsyncIterator[Payload]:
        SEEN.append((type(self).__name__, ctx.delivery_id))
        raise RuntimeError("secret-ish detail that must not be stored")
        yield


def events(prefix: str) -> tuple[type[WebhookEvent], ...]:
    """The three events under names unique to one webhook (event class names are stable IDs per definition)."""
    return tuple(type(f"{prefix}{e.__name__}", (e,), {}) for e in (ItemChanged, ItemDeleted, Explodes))


class GitHubStyle(Webhook):
    """GitHub's scheme, on a per-integration endpoint, with URL registration hooks."""

    name = "github"
    verifier = HmacSha256(header="X-Hub-Signature-256", prefix="sha256=", secret=EndpointSecret())
    event_type = Header("X-GitHub-Event")
    delivery_id = Header("X-GitHub-Delivery")
    events = events("Gh")

    async def register(self, ctx: Any, url: str) -> str:
        REGISTERED.append((ctx.integration.id, url))
        return "hook-123"

    async def unregister(self, ctx: Any, ref: str) -> None:
        UNREGISTERED.append(ref)


class SlackStyle(Webhook):
    name = "slack"
    verifier = SlackSignature(secret=OperatorSecret("slack_signing_secret"))
    event_type = JsonField("event.type")
    delivery_id = JsonField("event_id")
    events = events("Slack")


class StandardStyle(Webhook):
    name = "standard"
    verifier = StandardWebhooks(secret=EndpointSecret())
    event_type = CelValue("payload.type")
    events = events("Std")


class StripeStyle(Webhook):
    name = "stripe"
    verifier = StripeSignature(secret=EndpointSecret())
    event_type = JsonField("type")
    delivery_id = JsonField("id")
    events = events("Stripe")


class BearerStyle(Webhook):
    """No delivery ID: de-duplicated by content hash."""

    name = "bearer"
    verifier = BearerToken(secret=EndpointSecret())
    event_type = Header("X-Event")
    events = events("Bearer")


class AppStyle(Webhook):
    """A static webhook (one URL for the app) routed by ``provider_data.installation_id``."""

    name = "app"
    static = True
    verifier = HmacSha256(header="X-Hub-Signature-256", prefix="sha256=", secret=OperatorSecret("app_webhook_secret"))
    event_type = Header("X-GitHub-Event")
    delivery_id = Header("X-GitHub-Delivery")
    events = events("App")

    async def route(self, payload: Any, headers: dict[str, str]) -> dict[str, str] | None:
        installation = payload.get("installation") if isinstance(payload, dict) else None
        if not isinstance(installation, dict) or "id" not in installation:
            return None
        return {"installation_id": str(installation["id"])}


definition = Definition(
    id="hooks",
    name="Hooks",
    description="Webhooks of every scheme (tests only).",
    operator_config=HooksConfig,
    operations=(Refresh,),
    webhooks=(GitHubStyle, SlackStyle, StandardStyle, StripeStyle, BearerStyle, AppStyle),
    mappings=(
        Mapping(
            schema="asset",
            variant="item",
            map='{"source_identifier": payload.id, "name": payload.name, "asset_type": "item"}',
        ),
    ),
)
