"""The Events API webhook: one Request URL for the whole Slack app, routed to an integration by workspace.

Slack signs every request with the app's signing secret (``X-Slack-Signature`` over
``v0:{X-Slack-Request-Timestamp}:{body}``, refused outside a five-minute window). When the Request URL is
saved in the app settings, Slack first sends a ``url_verification`` request that must echo its ``challenge``.
Events arrive wrapped in an ``event_callback`` whose ``event_id`` identifies the delivery (Slack retries with
the same ID).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from engine import (
    CelValue,
    Emits,
    EventContext,
    JsonField,
    OperatorSecret,
    Payload,
    SlackSignature,
    Webhook,
    WebhookEvent,
    WebhookRequest,
)


class UserChange(WebhookEvent):
    """A member's profile, name, role or status changed (``deleted: true`` when deactivated): upsert it now."""

    match = "user_change"
    emits = (Emits("directory_account", "user"),)

    async def handle(self, ctx: EventContext) -> AsyncIterator[Payload]:
        yield Payload(schema="directory_account", variant="user", data=ctx.payload["event"]["user"],
                      resource="user", action="changed")


class TeamJoin(WebhookEvent):
    """A new member joined the workspace: add their account without waiting for the next sync."""

    match = "team_join"
    emits = (Emits("directory_account", "user"),)

    async def handle(self, ctx: EventContext) -> AsyncIterator[Payload]:
        yield Payload(schema="directory_account", variant="user", data=ctx.payload["event"]["user"],
                      resource="user", action="joined")


class SlackEventsWebhook(Webhook):
    """The Request URL under Event Subscriptions in the Slack app's settings."""

    name = "events"
    static = True
    verifier = SlackSignature(secret=OperatorSecret("signing_secret"))
    # The outer type is `event_callback` for every event; the inner `event.type` says which one it is.
    event_type = CelValue('payload.type == "event_callback" ? payload.event.type : payload.type')
    delivery_id = JsonField("event_id")
    events = (UserChange, TeamJoin)

    async def handshake(self, request: WebhookRequest) -> dict[str, Any] | None:
        """Answer ``url_verification`` with its ``challenge`` (after the signature was checked)."""
        payload = request.payload
        if isinstance(payload, dict) and payload.get("type") == "url_verification":
            return {"challenge": str(payload.get("challenge", ""))}
        return None

    async def route(self, payload: Any, headers: dict[str, str]) -> dict[str, str] | None:
        """Select the integration connected to this workspace (``team_id``, saved as the account ID)."""
        team = payload.get("team_id") if isinstance(payload, dict) else None
        if not isinstance(team, str) or not team:
            return None
        return {"team_id": team}
