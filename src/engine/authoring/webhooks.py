"""Webhooks: named inbound endpoints, how they are verified, and the events they carry.

A webhook declares, as data, how a delivery is verified (``verifier``: there is no webhook without one), where its
delivery ID is (for idempotency) and where its event type is. Each event class (its name is the stable ID, its
topic ``"{definition_id}.{ClassName}"``) matches one event type and has a handler that emits ingest payloads and/or
dispatches operations. Webhook names are explicit and unique within a definition.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from engine.authoring.operations import Emits, Payload
from engine.webhooks.verification import Verifier

if TYPE_CHECKING:
    from engine.authoring.operations import Operation


# -- where values live in a delivery -------------------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    """A request header (case-insensitive)."""

    name: str


@dataclass(frozen=True)
class JsonField:
    """A dotted path into the JSON body, e.g. ``"event.type"``."""

    path: str


@dataclass(frozen=True)
class CelValue:
    """A CEL expression over ``payload`` and ``headers``; compiled at registration."""

    expression: str


Locator = Header | JsonField | CelValue


# -- events --------------------------------------------------------------------------------------------------


@dataclass
class EventContext:
    """What an event handler receives."""

    integration_id: str
    event_type: str
    delivery_id: str | None
    payload: Any
    headers: dict[str, str]
    #: Hand an operation to the one execution path: ``await ctx.dispatch(OperationClass, {...})``.
    dispatch: Callable[[type[Operation], dict[str, Any]], Awaitable[str]]
    #: The integration's tenant, and the recorded delivery's row (``GET /v1/deliveries`` shows it).
    tenant_id: str = ""
    delivery_row_id: str = ""
    #: For events that end the connection at the provider's side (a GitHub App uninstalled): forgets the
    #: integration's credentials and endpoints without calling the provider. ``None`` outside the processor.
    cleanup: Callable[[], Awaitable[None] | None] | None = None


class WebhookEvent:
    """Base class for webhook events. Set ``match`` and override ``handle``."""

    #: The event type value (from the webhook's ``event_type`` locator) this class handles.
    match: ClassVar[str]
    emits: ClassVar[tuple[Emits, ...]] = ()

    @classmethod
    def event_id(cls) -> str:
        return cls.__name__

    @classmethod
    def has_handler(cls) -> bool:
        return cls.handle is not WebhookEvent.handle

    def handle(self, ctx: EventContext) -> AsyncIterator[Payload]:
        """An async generator: yield payloads for ingest, and/or ``await ctx.dispatch(...)`` operations."""
        raise NotImplementedError(f"{type(self).__name__} has no handler")


class Webhook:
    """Base class for webhooks. Subclass it and set the class attributes."""

    name: ClassVar[str]
    verifier: ClassVar[Verifier]
    event_type: ClassVar[Locator]
    delivery_id: ClassVar[Locator | None] = None
    events: ClassVar[tuple[type[WebhookEvent], ...]] = ()
    #: One endpoint for the whole app (routed to an integration by ``route``) instead of one per integration.
    static: ClassVar[bool] = False

    async def route(self, payload: Any, headers: dict[str, str]) -> dict[str, str] | None:
        """For static webhooks: the provider-data match that selects the integration (``None``: no route)."""
        raise NotImplementedError(f"{type(self).__name__} is static but has no route()")

    async def handshake(self, payload: Any, headers: dict[str, str]) -> BaseModel | dict[str, Any] | None:
        """Answer a provider handshake (Slack ``url_verification``) instead of processing; ``None``: not one."""
        return None
