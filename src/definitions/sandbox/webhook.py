"""Change events: the sandbox signs each with Standard Webhooks and posts it to this integration's own endpoint.

When the integration connects, the engine creates the endpoint (URL and ``whsec_`` secret) and calls ``register``,
which subscribes that URL at the sandbox (``POST /webhooks``); a disconnect calls ``unregister``. A delivery is
``{"type": "record.created"|"record.updated"|"record.deleted", "kind": "users", "data": {record}}`` with the
``webhook-id`` header as its delivery ID (a re-sent event keeps it, so the engine processes it once). A created or
updated record is upserted; a deleted one is removed (``Payload(remove=True)``: the row goes, with the records that
reference it, and the change feed gets its tombstone), like a deletion an incremental sync reads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from definitions.sandbox.api import post_json, raise_for_status
from definitions.sandbox.kinds import BY_NAME, EMITS
from definitions.sandbox.operations import payload
from engine import (
    EndpointSecret,
    EventContext,
    Header,
    JsonField,
    Payload,
    ProviderError,
    StandardWebhooks,
    Webhook,
    WebhookEvent,
)


class RecordEvent(WebhookEvent):
    """Shared by the three change events: the record in ``data`` goes to ingest as its kind's model (a removal for
    ``record.deleted``)."""

    emits = EMITS
    deleted = False

    async def handle(self, ctx: EventContext) -> AsyncIterator[Payload]:
        body = ctx.payload if isinstance(ctx.payload, dict) else {}
        kind, record = body.get("kind"), body.get("data")
        if kind not in BY_NAME or not isinstance(record, dict):
            raise ProviderError("the sandbox sent a change event without a known kind and a record")
        yield payload(str(kind), record, action=self.match, remove=self.deleted)


class RecordCreated(RecordEvent):
    match = "record.created"


class RecordUpdated(RecordEvent):
    match = "record.updated"


class RecordDeleted(RecordEvent):
    match = "record.deleted"
    deleted = True


class SandboxEvents(Webhook):
    """One endpoint per integration, subscribed at the sandbox when the integration connects."""

    name = "events"
    verifier = StandardWebhooks(secret=EndpointSecret())
    event_type = JsonField("type")
    delivery_id = Header("webhook-id")
    events = (RecordCreated, RecordUpdated, RecordDeleted)

    async def register(self, ctx: Any, url: str) -> str:
        """Subscribe ``url`` with the endpoint's secret; the subscription's ID is the provider reference."""
        if ctx.client is None or not ctx.secret:
            raise ProviderError("the sandbox subscription needs the integration's client and endpoint secret")
        answer = await post_json(ctx.client, "/webhooks", {"url": url, "secret": ctx.secret})
        return str(answer["id"])

    async def unregister(self, ctx: Any, ref: str) -> None:
        """Delete the subscription; one already gone (404) counts as done."""
        if ctx.client is None or not ref:
            return
        response = await ctx.client.delete(f"/webhooks/{ref}")
        if response.status_code != 404:
            raise_for_status(response)
