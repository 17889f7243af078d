"""Operations: the health check, and posting a message to a channel (a queued write).

Graph allows posting channel messages only as a signed-in user (``ChannelMessage.Send``, delegated); app-only
posting is reserved for migrations. That is why this definition connects with a user's OAuth grant.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from definitions.microsoft_graph import get_json, post_json
from definitions.microsoft_teams.client import TeamsClient
from engine import Operation, OperationContext, Policy

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
