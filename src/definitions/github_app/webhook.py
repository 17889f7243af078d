"""The app webhook: one endpoint for every installation, routed to an integration by installation ID.

GitHub signs each delivery with the app's webhook secret (``X-Hub-Signature-256``), names the event in
``X-GitHub-Event`` and identifies the delivery in ``X-GitHub-Delivery`` (used to drop redeliveries).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import Any

from engine import (
    Emits,
    EventContext,
    Header,
    HmacSha256,
    OperatorSecret,
    Payload,
    Webhook,
    WebhookEvent,
)


class Ping(WebhookEvent):
    """Sent once when the app's webhook is set up; there is nothing to do but accept it."""

    match = "ping"

    async def handle(self, ctx: EventContext) -> AsyncIterator[Payload]:
        return
        yield  # an async generator that yields nothing


class Installation(WebhookEvent):
    """The app was installed, uninstalled, suspended or had its permissions changed.

    On ``deleted`` the installation's tokens no longer work, so the integration's local state is cleaned up
    through ``ctx.extras["cleanup"]``: a callable (sync or async) the runtime will provide; until then,
    nothing happens.
    """

    match = "installation"

    async def handle(self, ctx: EventContext) -> AsyncIterator[Payload]:
        cleanup = ctx.extras.get("cleanup")
        if ctx.payload.get("action") == "deleted" and cleanup is not None:
            result = cleanup()
            if inspect.isawaitable(result):
                await result
        return
        yield  # an async generator that yields nothing


class RepositoryEvent(WebhookEvent):
    """A repository was created, renamed, archived, made public or private…: upsert it as an asset at once."""

    match = "repository"
    emits = (Emits("asset", "repository"),)

    async def handle(self, ctx: EventContext) -> AsyncIterator[Payload]:
        yield Payload(schema="asset", variant="repository", data=ctx.payload["repository"],
                      action=ctx.payload.get("action", ""))


class GitHubAppWebhook(Webhook):
    """The webhook URL configured in the GitHub App's settings."""

    name = "app"
    static = True
    verifier = HmacSha256(header="X-Hub-Signature-256", prefix="sha256=",
                          secret=OperatorSecret("webhook_secret"))
    delivery_id = Header("X-GitHub-Delivery")
    event_type = Header("X-GitHub-Event")
    events = (Ping, Installation, RepositoryEvent)

    async def route(self, payload: Any, headers: dict[str, str]) -> dict[str, str] | None:
        """Select the integration whose ``provider_data.installation_id`` matches (``ping`` carries none)."""
        installation = payload.get("installation") if isinstance(payload, dict) else None
        if not isinstance(installation, dict) or "id" not in installation:
            return None
        return {"installation_id": str(installation["id"])}
