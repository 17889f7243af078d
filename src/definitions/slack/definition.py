"""The Slack definition: every part of the provider, declared in one place."""

from __future__ import annotations

from definitions.slack.client import SlackClient
from definitions.slack.config import SlackAppConfig
from definitions.slack.connections import SlackBotTokenConnection, SlackOAuthConnection
from definitions.slack.mappings import USER
from definitions.slack.operations import HealthCheck, PostMessage, UserSync
from definitions.slack.slots import SlackBotToken, SlackOAuthToken
from definitions.slack.webhook import SlackEventsWebhook
from engine import Definition

definition = Definition(
    id="slack",
    name="Slack",
    description="Sync a Slack workspace's members and post messages, via the Slack app or a bot token.",
    category="collaboration",
    docs_url="https://api.slack.com/authentication/oauth-v2",
    operator_config=SlackAppConfig,
    slots=(SlackOAuthToken, SlackBotToken),
    clients=(SlackClient,),
    connections=(SlackOAuthConnection, SlackBotTokenConnection),
    operations=(HealthCheck, UserSync, PostMessage),
    webhooks=(SlackEventsWebhook,),
    mappings=(USER,),
)
