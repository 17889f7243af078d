"""Tether: the public authoring API for provider definitions.

A definition module imports what it needs from here and nothing deeper::

    from engine import Connection, CredentialSlot, Definition, Operation, Policy, ...
"""

from engine.authoring.clients import Client, ClientContext, IdentityToken, RenewToken
from engine.authoring.config import OperatorConfig, UserInput
from engine.authoring.connections import (
    PUBLIC_URL,
    AppInstall,
    Auth,
    ClientCredentials,
    Connection,
    ConnectionContext,
    IntegrationMetadata,
    NoRevocation,
    OAuth2,
    Product,
    Revoke,
)
from engine.authoring.definition import Definition
from engine.authoring.mappings import Mapping
from engine.authoring.operations import (
    REMOVE,
    Checkpoint,
    Emits,
    NoConfig,
    Operation,
    OperationContext,
    Payload,
    Policy,
)
from engine.authoring.slots import CredentialSlot, OAuth2Token
from engine.authoring.suite_checks import STANDARD_SUITE_CHECKS
from engine.authoring.webhooks import (
    CelValue,
    EventContext,
    Header,
    JsonField,
    Subscription,
    SubscriptionContext,
    SubscriptionGone,
    Webhook,
    WebhookEvent,
)
from engine.errors import ConfigurationError, DefinitionError, ProviderError, TetherError
from engine.governor.limits import RateLimit
from engine.webhooks.requests import Reply, WebhookRequest
from engine.webhooks.verification import (
    BearerToken,
    EndpointSecret,
    HmacSha256,
    InvalidSignature,
    OperatorSecret,
    SecretSource,
    SharedSecretHeader,
    SlackSignature,
    StaleDelivery,
    StandardWebhooks,
    StripeSignature,
    Verifier,
)

__all__ = [
    "PUBLIC_URL",
    "REMOVE",
    "STANDARD_SUITE_CHECKS",
    "AppInstall",
    "Auth",
    "BearerToken",
    "CelValue",
    "Checkpoint",
    "Client",
    "ClientContext",
    "ClientCredentials",
    "ConfigurationError",
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
    "IdentityToken",
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
    "Product",
    "ProviderError",
    "RateLimit",
    "RenewToken",
    "Reply",
    "Revoke",
    "SecretSource",
    "SharedSecretHeader",
    "SlackSignature",
    "StaleDelivery",
    "StandardWebhooks",
    "StripeSignature",
    "Subscription",
    "SubscriptionContext",
    "SubscriptionGone",
    "TetherError",
    "UserInput",
    "Verifier",
    "Webhook",
    "WebhookEvent",
    "WebhookRequest",
]
