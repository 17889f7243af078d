"""Operations: the health check, posting a message to a channel (a queued write), and the channel message sync.

Graph allows posting channel messages only as a signed-in user (``ChannelMessage.Send``, delegated); app-only
posting is reserved for migrations. That is why this definition connects with a user's OAuth grant.

The sync reads, as that user, every channel of every team they joined (``/me/joinedTeams``,
``/teams/{id}/channels``) and each channel's top-level messages through the channel-message delta query
(``/teams/{id}/channels/{id}/messages/delta``, Graph v1.0). Each channel's delta link is its part of the cursor
(saved only when the run succeeds), so the next run reads only the messages created, edited or deleted since. A
delta link Graph no longer knows (410) starts that channel over. Replies are not read (they need one more call per
message); a channel the user left simply stops being read, its rows stay.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
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
        # joinedTeams takes no OData parameters (it answers id, displayName and description only).
        async for team in DeltaPages(ctx.client, "/v1.0/me/joinedTeams"):
            team_id = _segment(team.get("id"))
            async for channel in DeltaPages(ctx.client, f"/v1.0/teams/{team_id}/channels?$select=id,displayName"):
                channel_id = _segment(channel.get("id"))
                key = f"{team.get('id')}/{channel.get('id')}"
                channel_ref = str(channel.get("id"))
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
