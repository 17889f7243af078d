"""Graph change notifications on channel messages (https://learn.microsoft.com/graph/teams-changenotifications-chatmessage).

One subscription per channel the user is in, on ``/teams/{team-id}/channels/{channel-id}/messages`` (new messages,
replies, edits and deletions): the per-channel resource is the one a *delegated* grant may subscribe to
(``ChannelMessage.Read.All``, which the connection already asks for). ``/teams/getAllMessages`` is application-only,
a protected API with its own licensing, and this definition acts as a signed-in user (docs/decisions.md). The
channels are listed by ``subscription_keys`` at the first connection and every hour after, so a team joined or a
channel created gets a subscription, and one left or deleted loses it.

Subscriptions are made *without resource data*: Graph encrypts resource data with a certificate of ours, which this
definition does not hold. A notification therefore names the message (``resource``:
``teams('…')/channels('…')/messages('…')``, with ``/replies('…')`` for a reply), and the handler dispatches
``FetchChangedMessages``, which reads it by that URL with the user's token and maps it as the sync does. A Teams
message subscription lives at most an hour (Graph's limit for ``chatMessage``): the engine renews it 20 minutes before
it ends.

Graph's delivery, ``clientState`` check, validation handshake and lifecycle events are shared with Entra ID
(``definitions.microsoft_graph_notifications``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import re2

from definitions.microsoft_graph_notifications import (
    CHANGE_NOTIFICATIONS,
    LIFECYCLE_NOTIFICATIONS,
    GraphSubscriptionWebhook,
    apply_lifecycle,
    live_notifications,
)
from definitions.microsoft_teams.operations import (
    MAX_CHANGED,
    ChannelMessagesSync,
    FetchChangedMessages,
    joined_channels,
)
from engine import EventContext, Payload, SubscriptionContext, WebhookEvent

#: What a channel message subscription reports.
CHANGE_TYPE = "created,updated,deleted"
#: Graph's maximum for a chatMessage subscription is 60 minutes; a little less is asked for, so that clock skew never
#: makes Graph refuse the request.
MESSAGE_SUBSCRIPTION_LIFETIME = timedelta(minutes=55)

#: A notification's ``resource`` for a channel message or a reply (Graph writes the segments in OData key syntax).
#: RE2: the body is attacker-controlled until ``clientState`` is checked, and cheap to match either way.
RESOURCE = re2.compile(
    r"^/?(?i:teams)\('([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})'\)"
    r"/(?i:channels)\('(19:[A-Za-z0-9_-]+@thread\.(?:tacv2|skype))'\)"
    r"/(?i:messages)\('([0-9]{1,20})'\)(?:/(?i:replies)\('([0-9]{1,20})'\))?$"
)
CHANGE_TYPES = frozenset({"created", "updated", "deleted"})


def channel_resource(team_id: str, channel_id: str) -> str:
    """The subscription resource (and row key) of a channel's messages."""
    return f"/teams/{team_id}/channels/{channel_id}/messages"


def changed_message(item: dict[str, Any]) -> dict[str, Any] | None:
    """The message a change notification names, as ``FetchChangedMessages`` takes it; ``None`` when it names no
    channel message (another resource, or a change type Graph does not send for messages)."""
    found = RESOURCE.match(str(item.get("resource", "")))
    change = item.get("changeType")
    if found is None or change not in CHANGE_TYPES:
        return None
    team, channel, message, reply = found.groups()
    return {
        "team_id": team.lower(),
        "channel_id": channel,
        "message_id": message,
        "reply_id": reply,
        "change_type": change,
    }


class ChannelMessageNotifications(WebhookEvent):
    """A batch of message changes of live subscriptions: one ``FetchChangedMessages`` for the messages it names
    (each once, with its last change)."""

    match = CHANGE_NOTIFICATIONS

    async def handle(self, ctx: EventContext) -> AsyncIterator[Payload]:
        changed: dict[tuple[str, str, str, str | None], dict[str, Any]] = {}
        for item in await live_notifications(ctx):
            found = changed_message(item)
            if found is not None:
                key = (found["team_id"], found["channel_id"], found["message_id"], found["reply_id"])
                changed.pop(key, None)
                changed[key] = found  # the last change of a message wins, in batch order
        if changed:
            await ctx.dispatch(FetchChangedMessages, {"messages": list(changed.values())[-MAX_CHANGED:]})
        return
        yield  # an async generator that yields nothing


class ChannelLifecycleNotifications(WebhookEvent):
    """Graph's lifecycle notifications (``apply_lifecycle``); a removed subscription or missed notifications run the
    channel message sync, whose delta links read exactly what changed meanwhile."""

    match = LIFECYCLE_NOTIFICATIONS

    async def handle(self, ctx: EventContext) -> AsyncIterator[Payload]:
        if await apply_lifecycle(ctx):
            await ctx.dispatch(ChannelMessagesSync, {})
        return
        yield  # an async generator that yields nothing


class ChannelMessageChanges(GraphSubscriptionWebhook):
    """One endpoint per integration: the notification and lifecycle URL of its subscriptions, one per channel."""

    name = "channel_messages"
    events = (ChannelMessageNotifications, ChannelLifecycleNotifications)
    change_type = CHANGE_TYPE
    lifetime = MESSAGE_SUBSCRIPTION_LIFETIME
    renew_before = timedelta(minutes=20)
    list_keys_every = timedelta(hours=1)

    async def subscription_keys(self, ctx: SubscriptionContext) -> tuple[str, ...]:
        keys = []
        async for team_id, channel_id in joined_channels(ctx.client):
            # IDs come from Graph; one that would change the resource's path is not subscribed to.
            if quote(team_id, safe="") == team_id and quote(channel_id, safe=":@") == channel_id:
                keys.append(channel_resource(team_id, channel_id))
        return tuple(keys)
