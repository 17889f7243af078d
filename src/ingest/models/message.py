"""Message: one message in a mailbox (an email) or in a chat channel (a Teams channel post).

Metadata only: who, to whom, when, where, and the provider's own short preview. There is deliberately no body
column: a mailbox body is the most sensitive thing an integration can read, and the read-only tiers never fetch it
(docs/decisions.md). A definition that is granted a full tier and needs more puts it in ``attributes`` explicitly.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, UniqueConstraint
from sqlmodel import Field, SQLModel

from ingest.annotations import IngestOptions, from_context, mapped, record_indexes, upsert_key


class Message(SQLModel, table=True):
    __tablename__ = "message"
    __table_args__ = (UniqueConstraint("tenant_id", "integration_id", "external_id"), *record_indexes("message"))
    __ingest__: ClassVar[IngestOptions] = IngestOptions(schema="message")

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = from_context("tenant_id")
    integration_id: str = from_context("integration_id")
    definition_id: str = from_context("definition_id")
    #: The provider's message ID (Gmail message ID, Teams chatMessage ID): the upsert and lookup key.
    external_id: str = upsert_key(lookup=True)
    #: ``email`` or ``chat``: the two shapes this model holds.
    kind: str = mapped()
    #: Gmail threadId, a Teams reply's parent message ID / conversation ID.
    thread_id: str | None = mapped(None)
    #: The sender as the provider names it: an RFC 5322 address (``"Ann <ann@example.com>"``) or a user ID.
    sender: str | None = mapped(None)
    sender_name: str | None = mapped(None)
    #: Recipients as strings (To, Cc), in the provider's order; chat messages have none.
    recipients: list[Any] | None = mapped(None, sa_type=JSON)
    subject: str | None = mapped(None)
    sent_at: datetime | None = mapped(None)
    #: Gmail label IDs, mail folders; chat messages have none.
    labels: list[Any] | None = mapped(None, sa_type=JSON)
    #: The provider's short preview (Gmail snippet, a Teams summary), never the full body.
    snippet: str | None = mapped(None)
    #: For chat: the channel and team it was posted in.
    channel_id: str | None = mapped(None)
    team_id: str | None = mapped(None)
    url: str | None = mapped(None)
    attributes: dict[str, Any] | None = mapped(None, sa_type=JSON)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
