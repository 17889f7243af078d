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
from engine.verification import (
    BearerToken,
    EndpointSecret,
    HmacSha256,
    InvalidSignature,
    OperatorSecret,
    SecretSource,
    SlackSignature,
    StaleDelivery,
    StandardWebhooks,
    StripeSignature,
    Verifier,
)
from engine.webhooks import CelValue, EventContext, Header, JsonField, Webhook, WebhookEvent

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
    "InvalidSignature",
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
    "SecretSource",
    "SlackSignature",
    "StaleDelivery",
    "StandardWebhooks",
    "StripeSignature",
    "TetherError",
    "UserInput",
    "Verifier",
    "Webhook",
    "WebhookEvent",
]
