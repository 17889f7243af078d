"""Operations: the health check, the user sync and posting a message.

All three work with either connection: both hold a bot token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, cast

from pydantic import BaseModel, ConfigDict, Field

from definitions.slack.api import call, paginate
from definitions.slack.client import SlackClient
from engine import Emits, Operation, OperationContext, Payload, Policy


class HealthCheck(Operation):
    """Check that the bot token still works: ``auth.test`` needs no scope and names the workspace."""

    client = SlackClient
    policy = Policy.inline()

    async def run(self, ctx: OperationContext) -> dict[str, Any]:
        identity = await call(ctx.client, "auth.test")
        return {"ok": True, "team_id": identity.get("team_id"), "team": identity.get("team")}


class UserSync(Operation):
    """Sync every member of the workspace (people, guests and bots) into ``directory_account`` rows.

    Runs after connecting and every six hours. ``users.list`` includes deactivated members (``deleted: true``),
    so their rows are updated to ``deactivated`` rather than left looking active. Needs ``users:read``, and
    ``users:read.email`` for email addresses.
    """

    client = SlackClient
    policy = Policy.queued(reconcile=True, schedule=timedelta(hours=6))
    emits = (Emits("directory_account", "user"),)

    async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        async for member in paginate(ctx.client, "users.list", items="members"):
            yield Payload(schema="directory_account", variant="user", data=member, resource="user")


class SlackMessage(BaseModel):
    """What to post: a channel (ID, or a user ID for a DM) and the text, optionally in a thread or as blocks."""

    model_config = ConfigDict(extra="forbid")

    channel: str = Field(min_length=1, max_length=255)
    #: The message, or with ``blocks`` the notification fallback. Slack truncates past 40,000 characters.
    text: str = Field(min_length=1, max_length=40_000)
    #: Reply in the thread of this parent message timestamp.
    thread_ts: str | None = None
    #: Block Kit layout, passed through as is.
    blocks: list[dict[str, Any]] | None = None
    unfurl_links: bool = False


class PostMessage(Operation):
    """Post a message as the app's bot user (``chat.postMessage``; needs ``chat:write``, the write tier).

    Queued so that a 429 defers it through the queue instead of blocking a caller. Slack offers no idempotency
    key, so a retry after a lost response can post twice; rate limits and refusals happen before posting.
    """

    config = SlackMessage
    client = SlackClient
    policy = Policy.queued(access="write", max_retries=3)

    async def run(self, ctx: OperationContext) -> dict[str, Any]:
        message = cast(SlackMessage, ctx.config)
        sent = await call(ctx.client, "chat.postMessage", json=message.model_dump(exclude_none=True))
        return {"ok": True, "channel": sent.get("channel"), "ts": sent.get("ts")}
