"""Graph change notifications for users and groups: a validation handshake, then batches of notifications.

Graph's delivery, its ``clientState`` check, the validation handshake and lifecycle events are shared with Teams
(``definitions.microsoft_graph_notifications``). Notifications carry only IDs, so the handler dispatches the delta
sync, which reads exactly what changed. The subscriptions themselves (one on ``users``, one on ``groups``) are kept
by the engine (``Webhook.subscriptions``) through the shared ``subscribe`` / ``renew`` / ``unsubscribe``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

from definitions.azure_entra_id.operations import DirectorySync
from definitions.microsoft_graph import DIRECTORY_SUBSCRIPTION_LIFETIME
from definitions.microsoft_graph_notifications import (
    CHANGE_NOTIFICATIONS,
    LIFECYCLE_NOTIFICATIONS,
    GraphClientState,
    GraphSubscriptionWebhook,
    apply_lifecycle,
    live_notifications,
    validation_reply,
)
from engine import EventContext, Payload, WebhookEvent

#: What the subscriptions on users and groups report (Graph reports a created user as ``updated``).
CHANGE_TYPE = "updated,deleted"


class ChangeNotifications(WebhookEvent):
    """A batch of user or group changes (verified by ``GraphClientState``): run the delta sync once for it.

    Only notifications of a live subscription of this endpoint count: one of a subscription we deleted or replaced
    (Graph keeps delivering for a while) carries the same ``clientState`` but is stale, and is skipped.
    """

    match = CHANGE_NOTIFICATIONS

    async def handle(self, ctx: EventContext) -> AsyncIterator[Payload]:
        live = [str(item.get("resource", "")).lower() for item in await live_notifications(ctx)]
        if any(r.startswith(("users", "groups")) for r in live):
            await ctx.dispatch(DirectorySync, {})
        return
        yield  # an async generator that yields nothing


class LifecycleNotifications(WebhookEvent):
    """Graph's lifecycle notifications (``apply_lifecycle``); a removed subscription or missed notifications
    dispatch the delta sync, which fetches what was missed."""

    match = LIFECYCLE_NOTIFICATIONS

    async def handle(self, ctx: EventContext) -> AsyncIterator[Payload]:
        if await apply_lifecycle(ctx):
            await ctx.dispatch(DirectorySync, {})
        return
        yield  # an async generator that yields nothing


class GraphChangeNotifications(GraphSubscriptionWebhook):
    """One endpoint per integration: the ``notificationUrl`` and ``lifecycleNotificationUrl`` of its Graph
    subscriptions on ``users`` and ``groups``, which the engine creates, renews and deletes."""

    name = "change_notifications"
    events = (ChangeNotifications, LifecycleNotifications)
    subscriptions = ("users", "groups")
    renew_before = timedelta(days=3)
    change_type = CHANGE_TYPE
    lifetime = DIRECTORY_SUBSCRIPTION_LIFETIME


__all__ = [
    "CHANGE_TYPE",
    "ChangeNotifications",
    "GraphChangeNotifications",
    "GraphClientState",
    "LifecycleNotifications",
    "validation_reply",
]
