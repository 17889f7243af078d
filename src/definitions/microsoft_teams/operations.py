"""Operations: the health check, posting a message to a channel (a queued write), and the channel message sync.

Graph allows posting channel messages only as a signed-in user (``ChannelMessage.Send``, delegated); app-only
posting is reserved for migrations. That is why this definition connects with a user's OAuth grant.

The sync reads, as that user, every channel of every team they joined (``/me/joinedTeams``,
``/teams/{id}/channels``) and each channel's top-level messages through the channel-message delta query
(``/teams/{id}/channels/{id}/messages/delta``, Graph v1.0). Each channel's delta link is its part of the cursor
(saved only when the run succeeds), so the next run reads only the messages created, edited or deleted since. A
delta link Graph no longer knows (410) starts that channel over. Replies are not read (they need one more call per
message); a channel the user left simply stops being read, its rows stay.

``FetchChangedMessages`` is what a change notification dispatches (``webhook``): Tether subscribes without resource
data, so a notification names a message (or reply) and this reads it by that resource and maps it the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from definitions.microsoft_graph import DeltaPages, get_json, post_json
from definitions.microsoft_teams.client import TeamsClient
from engine import REMOVE, Emits, Operation, OperationContext, Payload, Policy, ProviderError

#: A team's ID is its Microsoft 365 group's GUID.
TEAM_ID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
#: Channel IDs look like ``19:4a95f7d8db4c4e7fae857bcebe0623e6@thread.tacv2``; IDs go into the URL path, so
#: nothing that could add a path segment or a query is accepted.
CHANNEL_ID = r"^19:[A-Za-z0-9_-]+@thread\.(tacv2|skype)$"


class HealthCheck(Operation):
    """Check the grant with the cheapest call that needs it: who the token belongs to."""

    client = TeamsClient
    policy = Policy.inline()

    async def run(self, ctx: OperationContext) -> dict[str, Any]:
        me = await get_json(ctx.client, "/v1.0/me", **{"$select": "id,displayName,userPrincipalName"})
        return {"ok": True, "user": me.get("userPrincipalName")}


class PostChannelMessageConfig(BaseModel):
    """Where to post, and the plain text to post (Teams' limit is about 28 KB per message)."""

    model_config = ConfigDict(extra="forbid")

    team_id: str = Field(pattern=TEAM_ID)
    channel_id: str = Field(pattern=CHANNEL_ID)
    text: str = Field(min_length=1, max_length=28_000)


class PostChannelMessage(Operation):
    """Post a plain-text message to a channel, as the connected user. Returns the new message's ID and link."""

    config = PostChannelMessageConfig
    client = TeamsClient
    policy = Policy.queued(access="write", max_retries=3)

    async def run(self, ctx: OperationContext) -> dict[str, Any]:
        config = PostChannelMessageConfig.model_validate(ctx.config.model_dump())
        path = f"/v1.0/teams/{config.team_id}/channels/{config.channel_id}/messages"
        message = await post_json(ctx.client, path, {"body": {"contentType": "text", "content": config.text}})
        return {"id": message.get("id"), "web_url": message.get("webUrl")}


#: Graph's page size limit for the channel-message delta query.
DELTA_PAGE = 50


def _segment(value: Any) -> str:
    """A team or channel ID as one URL path segment (IDs come from Graph, but never add a segment or a query)."""
    if not isinstance(value, str) or not value:
        raise ProviderError("Microsoft Graph answered a team or channel without an ID")
    return quote(value, safe=":@")


def message_payload(message: dict[str, Any], channel: str) -> Payload:
    """A message, or its removal when Graph says it was deleted (``deletedDateTime`` set, body emptied)."""
    deleted = message.get("deletedDateTime") is not None
    return Payload("message", message, variant="channel_message", resource=channel, action=REMOVE if deleted else "")


async def joined_channels(client: Any) -> AsyncIterator[tuple[str, str]]:
    """(team ID, channel ID) of every channel of every team the user joined."""
    # joinedTeams takes no OData parameters (it answers id, displayName and description only).
    async for team in DeltaPages(client, "/v1.0/me/joinedTeams"):
        team_id = _segment(team.get("id"))
        async for channel in DeltaPages(client, f"/v1.0/teams/{team_id}/channels?$select=id,displayName"):
            _segment(channel.get("id"))
            yield str(team.get("id")), str(channel.get("id"))


class ChannelMessagesSync(Operation):
    """Sync the top-level messages of every channel of the user's teams into ``message`` (variant
    ``channel_message``), incrementally per channel.

    The cursor is ``{"channels": {"<team id>/<channel id>": "<delta link>"}}``. Message bodies are never stored
    (``mappings.CHANNEL_MESSAGE``); a deleted message removes its row.
    """

    client = TeamsClient
    policy = Policy.queued(reconcile=True)
    emits = (Emits("message", "channel_message"),)

    async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        cursor = ctx.cursor if isinstance(ctx.cursor, dict) else {}
        links = cursor.get("channels") if isinstance(cursor.get("channels"), dict) else {}
        next_links: dict[str, str] = {}
        async for team_ref, channel_ref in joined_channels(ctx.client):
            team_id, channel_id = _segment(team_ref), _segment(channel_ref)
            key = f"{team_ref}/{channel_ref}"
            start = f"/v1.0/teams/{team_id}/channels/{channel_id}/messages/delta?$top={DELTA_PAGE}"
            pages = DeltaPages(ctx.client, links.get(key) or start)
            try:
                async for message in pages:
                    yield message_payload(message, channel_ref)
            except ProviderError as exc:
                if exc.provider_status != 410 or pages.url == start:
                    raise
                pages = DeltaPages(ctx.client, start)  # the delta link expired: read the channel again
                async for message in pages:
                    yield message_payload(message, channel_ref)
            if pages.delta_link is None:
                raise ProviderError("Microsoft Graph ended a channel message delta round without a delta link")
            next_links[key] = pages.delta_link
        ctx.next_cursor = {"channels": next_links}


#: A chatMessage ID is its creation time in milliseconds.
MESSAGE_ID = r"^[0-9]{1,20}$"
#: The most messages one notification batch names (Graph sends far fewer; a bound on one run's calls).
MAX_CHANGED = 1000


class ChangedMessage(BaseModel):
    """One message (or reply) a change notification named."""

    model_config = ConfigDict(extra="forbid")

    team_id: str = Field(pattern=TEAM_ID)
    channel_id: str = Field(pattern=CHANNEL_ID)
    message_id: str = Field(pattern=MESSAGE_ID)
    #: Set for a reply: ``message_id`` is then the thread's first message.
    reply_id: str | None = Field(default=None, pattern=MESSAGE_ID)
    change_type: Literal["created", "updated", "deleted"]


class FetchChangedMessagesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messages: list[ChangedMessage] = Field(min_length=1, max_length=MAX_CHANGED)


class FetchChangedMessages(Operation):
    """Read each message a change notification named, by its resource URL, into ``message`` (the sync's mapping).

    A message Graph answers with ``deletedDateTime`` is a removal; one it no longer has (``404``) is a removal too
    when the notification said ``deleted``, and otherwise skipped (it was deleted since: its own notification
    follows).
    """

    config = FetchChangedMessagesConfig
    client = TeamsClient
    policy = Policy.queued(max_retries=3)
    emits = (Emits("message", "channel_message"),)

    async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        config = FetchChangedMessagesConfig.model_validate(ctx.config.model_dump())
        for changed in config.messages:
            path = (f"/v1.0/teams/{changed.team_id}/channels/{_segment(changed.channel_id)}"
                    f"/messages/{changed.message_id}")
            if changed.reply_id is not None:
                path += f"/replies/{changed.reply_id}"
            try:
                message = await get_json(ctx.client, path)
            except ProviderError as exc:
                if exc.provider_status != 404:
                    raise
                if changed.change_type == "deleted":
                    gone = {"id": changed.reply_id or changed.message_id}
                    yield Payload("message", gone, variant="channel_message", resource=changed.channel_id,
                                  action=REMOVE)
                continue
            yield message_payload(message, changed.channel_id)
