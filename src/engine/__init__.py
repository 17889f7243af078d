"""Tether: the public authoring API for provider definitions.

A definition module imports what it needs from here and nothing deeper::

    from engine import Connection, CredentialSlot, Definition, Operation, Policy, ...
"""

from engine.clients import Client, ClientContext
from engine.config import OperatorConfig, UserInput
from engine.connections import (
    AppInstall,
    Auth,
    ClientCredentials,
    Connection,
    ConnectionContext,
    IntegrationMetadata,
    NoRevocation,
    OAuth2,
    Revoke,
)
from engine.definition import Definition
from engine.errors import DefinitionError, ProviderError, TetherError
from engine.mappings import Mapping
from engine.operations import Emits, NoConfig, Operation, OperationContext, Payload, Policy
from engine.slots import CredentialSlot, OAuth2Token
from engine.webhooks import (
    BearerToken,
    CelValue,
    EndpointSecret,
    EventContext,
    Header,
    HmacSha256,
    JsonField,
    OperatorSecret,
    SlackSignature,
    StandardWebhooks,
    StripeSignature,
    Webhook,
    WebhookEvent,
)

__all__ = [
    "AppInstall",
    "Auth",
    "BearerToken",
    "CelValue",
    "Client",
    "ClientContext",
    "ClientCredentials",
    "Connection",
    "ConnectionContext",
    "CredentialSlot",
    "Definition",
    "DefinitionError",
    "Emits",
    "EndpointSecret",
    "EventContext",
    "Header",
    "HmacSha256",
    "IntegrationMetadata",
    "JsonField",
    "Mapping",
    "NoConfig",
    "NoRevocation",
    "OAuth2",
    "OAuth2Token",
    "Operation",
    "OperationContext",
    "OperatorConfig",
    "OperatorSecret",
    "Payload",
    "Policy",
    "ProviderError",
    "Revoke",
    "SlackSignature",
    "StandardWebhooks",
    "StripeSignature",
    "TetherError",
    "UserInput",
    "Webhook",
    "WebhookEvent",
]
