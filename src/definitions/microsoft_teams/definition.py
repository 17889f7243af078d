"""The Microsoft Teams definition: every part of the provider, declared in one place."""

from __future__ import annotations

from definitions.microsoft_teams.client import TeamsClient
from definitions.microsoft_teams.config import TeamsConfig
from definitions.microsoft_teams.connections import TeamsOAuthConnection
from definitions.microsoft_teams.mappings import MAPPINGS
from definitions.microsoft_teams.operations import (
    ChannelMessagesSync,
    FetchChangedMessages,
    HealthCheck,
    PostChannelMessage,
)
from definitions.microsoft_teams.slots import TeamsOAuthToken
from definitions.microsoft_teams.webhook import ChannelMessageChanges
from engine import Definition

definition = Definition(
    id="microsoft_teams",
    name="Microsoft Teams",
    description="Post messages to Microsoft Teams channels as a connected user, and sync channel messages.",
    category="collaboration",
    docs_url="https://learn.microsoft.com/graph/api/chatmessage-post",
    operator_config=TeamsConfig,
    slots=(TeamsOAuthToken,),
    clients=(TeamsClient,),
    connections=(TeamsOAuthConnection,),
    operations=(HealthCheck, PostChannelMessage, ChannelMessagesSync, FetchChangedMessages),
    webhooks=(ChannelMessageChanges,),
    mappings=MAPPINGS,
)
