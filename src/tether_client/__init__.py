"""A Python client for Tether's API, for host apps: ``Client`` (sync) and ``AsyncClient`` (async) over httpx.

It depends on httpx and pydantic only (never on the engine); its models are generated from the server's
``/openapi.json`` (``scripts/client_codegen.py``). See docs/client.md.
"""

from tether_client import _models as models
from tether_client._models import (
    AccessTokenView,
    AuditView,
    ChangePage,
    ChangeView,
    DisconnectResult,
    InlineResponse,
    IntegrationView,
    QueuedResponse,
    RecordPage,
    RunList,
    RunStatus,
    RunView,
    ValidateResult,
)
from tether_client.async_client import AsyncClient
from tether_client.client import Client
from tether_client.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    ProviderFailed,
    ProviderUnauthorized,
    RateLimited,
    ServerError,
    TetherError,
    Unauthenticated,
    Unauthorized,
)
from tether_client.events import EventVerificationError, verify_event
from tether_client.principal import PrincipalSigner, sign_principal

__all__ = [
    "AccessTokenView",
    "AsyncClient",
    "AuditView",
    "ChangePage",
    "ChangeView",
    "Client",
    "Conflict",
    "DisconnectResult",
    "EventVerificationError",
    "Forbidden",
    "InlineResponse",
    "IntegrationView",
    "InvalidInput",
    "NotFound",
    "PrincipalSigner",
    "ProviderFailed",
    "ProviderUnauthorized",
    "QueuedResponse",
    "RateLimited",
    "RecordPage",
    "RunList",
    "RunStatus",
    "RunView",
    "ServerError",
    "TetherError",
    "Unauthenticated",
    "Unauthorized",
    "ValidateResult",
    "models",
    "sign_principal",
    "verify_event",
]
