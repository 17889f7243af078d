"""Webhooks: named inbound endpoints, how they are verified, and the events they carry.

A webhook declares, as data, how a delivery is verified (``verifier``: there is no webhook without one), where its
delivery ID is (for idempotency), where its event type is, and which HTTP methods its provider uses (``methods``:
``GET`` for Okta's one-time verification, ``HEAD`` for reachability probes; only ``POST`` is ever recorded). Each
event class (its name is the stable ID, its topic ``"{definition_id}.{ClassName}"``) matches one event type and has a
handler that emits ingest payloads and/or dispatches operations. Webhook names are explicit and unique within a
definition.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel

from engine.authoring.operations import Emits, Payload
from engine.errors import TetherError
from engine.webhooks.requests import Reply, WebhookRequest
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


# -- subscriptions held at the provider ----------------------------------------------------------------------


@dataclass(frozen=True)
class Subscription:
    """A subscription the provider holds for one endpoint (a Microsoft Graph subscription on ``users``)."""

    key: str
    provider_id: str
    expires_at: datetime | None = None


@dataclass
class SubscriptionContext:
    """What a webhook's ``subscribe`` / ``renew`` / ``unsubscribe`` receive."""

    integration_id: str
    #: Which of the webhook's ``subscriptions`` this is.
    key: str
    #: The endpoint's public URL (the subscription's notification URL).
    url: str
    #: The endpoint's secret (``EndpointSecret``; Graph's ``clientState``), ``None`` for operator secrets.
    secret: str | None
    #: The integration's API client (built from its stored credential).
    client: Any
    operator_config: Any
    now: datetime


class SubscriptionGone(TetherError):
    """Raised by ``renew`` when the provider no longer has the subscription: the engine subscribes anew."""

    code = "subscription_gone"
    status = 404


class Subscriptions(Protocol):
    """An event handler's view of its endpoint's subscriptions (``EventContext.subscriptions``)."""

    async def known(self, provider_id: str) -> bool:
        """Whether ``provider_id`` is a live subscription of this endpoint (else the notification is stale)."""
        ...

    async def renew(self, provider_id: str) -> bool:
        """Have the subscription renewed at the next scheduler pass (the provider asked to reauthorize)."""
        ...

    async def removed(self, provider_id: str) -> bool:
        """Record that the provider removed the subscription: it is created again at the next scheduler pass."""
        ...


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
    #: The delivery's raw body, exactly as received (a scheme of the handler's own, a format the engine does not
    #: parse).
    body: bytes = b""
    #: The endpoint's subscriptions at the provider (``Webhook.subscriptions``); ``None`` outside the processor.
    subscriptions: Subscriptions | None = None


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
    #: The HTTP methods the provider uses. ``POST`` deliveries are verified and recorded; a ``GET`` is verified and
    #: answered by a handshake only; a ``HEAD`` (a reachability probe) is answered ``200`` with nothing verified or
    #: recorded. Others: ``405 method_not_allowed``.
    methods: ClassVar[frozenset[str]] = frozenset({"POST"})
    #: Subscriptions the provider must hold for each endpoint (keys, e.g. Graph resources ``("users", "groups")``):
    #: the engine calls ``subscribe`` at the first connection, ``renew`` from the scheduler ``renew_before`` they
    #: expire (or when a handler asks), and ``unsubscribe`` on disconnect, keeping one row per key.
    subscriptions: ClassVar[tuple[str, ...]] = ()
    renew_before: ClassVar[timedelta] = timedelta(days=1)
    #: How often the engine asks ``subscription_keys`` again, for a webhook whose keys depend on what the
    #: integration can see (Teams: one subscription per channel the user is in).
    list_keys_every: ClassVar[timedelta] = timedelta(hours=1)

    async def subscription_keys(self, ctx: SubscriptionContext) -> tuple[str, ...]:
        """The keys to hold subscriptions for, when they are not fixed by ``subscriptions`` (``ctx.key`` is "").
        Asked at the first connection and every ``list_keys_every``; a key no longer listed is unsubscribed."""
        return type(self).subscriptions

    @classmethod
    def lists_keys(cls) -> bool:
        """Whether the keys come from ``subscription_keys`` (asked of the provider) rather than ``subscriptions``."""
        return cls.subscription_keys is not Webhook.subscription_keys

    @classmethod
    def subscribes(cls) -> bool:
        """Whether the engine keeps provider-side subscriptions for this webhook's endpoints."""
        return bool(cls.subscriptions) or cls.lists_keys()

    async def subscribe(self, ctx: SubscriptionContext) -> Subscription:
        """Create (or adopt, when the provider already holds one for this URL and key) the subscription."""
        raise NotImplementedError(f"{type(self).__name__} declares subscriptions but no subscribe()")

    async def renew(self, ctx: SubscriptionContext, subscription: Subscription) -> Subscription:
        """Extend the subscription; raise ``SubscriptionGone`` when the provider no longer has it."""
        raise NotImplementedError(f"{type(self).__name__} declares subscriptions but no renew()")

    async def unsubscribe(self, ctx: SubscriptionContext, subscription: Subscription) -> None:
        """Delete the subscription at the provider (one already gone is not an error)."""
        raise NotImplementedError(f"{type(self).__name__} declares subscriptions but no unsubscribe()")

    async def route(self, payload: Any, headers: dict[str, str]) -> dict[str, str] | None:
        """For static webhooks: the provider-data match that selects the integrations (every connected integration
        matching it gets the delivery; ``None`` or no match: the delivery is kept as unrouted)."""
        raise NotImplementedError(f"{type(self).__name__} is static but has no route()")

    async def handshake(self, request: WebhookRequest) -> Reply | BaseModel | dict[str, Any] | None:
        """Answer a provider handshake instead of processing, after the request was verified (``request`` has the
        method, query, headers, raw body and, for ``POST``, the parsed payload); ``None``: not one. A handshake
        that arrives unauthenticated by the provider's design belongs to the verifier's ``challenge``."""
        return None
