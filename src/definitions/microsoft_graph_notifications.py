"""Microsoft Graph change notifications, shared by the Graph definitions (Entra ID's users and groups, Teams' channel
messages): the ``clientState`` verifier, the validation handshake, lifecycle events and the subscription hooks.

How Graph delivers (https://learn.microsoft.com/graph/change-notifications-delivery-webhooks):

* Creating a subscription, Graph first POSTs to the URL with ``?validationToken=…`` and no body, and expects the
  token back within 10 seconds as ``200 text/plain``. ``GraphClientState.challenge`` answers that.
* Each later POST holds ``{"value": [notification, …]}``. Graph does not sign them; instead every notification
  repeats the ``clientState`` secret given when subscribing. A delivery is genuine only if *every* notification
  carries it, compared in constant time.
* Lifecycle notifications (https://learn.microsoft.com/graph/change-notifications-lifecycle-events) come to the
  ``lifecycleNotificationUrl`` (the same endpoint here) as ``{"value": [{"lifecycleEvent": …}]}``.

Graph's scheme is a secret inside the body, so ``GraphClientState`` is a ``Verifier`` of the definitions' own: the
engine runs it on the raw body before the delivery is recorded, against the endpoint secret it generated (and
handed Graph as ``clientState`` when subscribing). Only notifications of a live subscription of the endpoint count
(``live_notifications``): one of a subscription deleted or replaced carries the same ``clientState`` but is stale.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

from definitions.microsoft_graph import (
    create_subscription,
    delete_subscription,
    find_subscription,
    parse_graph_time,
    renew_subscription,
)
from engine import (
    CelValue,
    ConfigurationError,
    EndpointSecret,
    EventContext,
    InvalidSignature,
    Reply,
    SecretSource,
    Subscription,
    SubscriptionContext,
    SubscriptionGone,
    TetherError,
    Verifier,
    Webhook,
    WebhookRequest,
)

#: Graph's validation tokens are opaque and short; anything longer is not one.
MAX_VALIDATION_TOKEN = 1024
#: The event types of a Graph endpoint: a batch is lifecycle notifications (each item has ``lifecycleEvent``) or
#: change notifications, never mixed.
CHANGE_NOTIFICATIONS = "change_notifications"
LIFECYCLE_NOTIFICATIONS = "lifecycle_notifications"
NOTIFICATION_TYPE = CelValue(
    "has(payload.value) && size(payload.value) > 0 && has(payload.value[0].lifecycleEvent)"
    f' ? "{LIFECYCLE_NOTIFICATIONS}" : "{CHANGE_NOTIFICATIONS}"'
)


@dataclass(frozen=True, kw_only=True)
class GraphClientState(Verifier):
    """Every item of ``value`` carries ``clientState`` equal to the endpoint's secret (set when subscribing)."""

    secret: SecretSource
    field: str = "clientState"

    def verify(self, body: bytes, headers: Mapping[str, str], secrets: str | Sequence[str], *, now: float) -> None:
        expected = [s.encode() for s in ([secrets] if isinstance(secrets, str) else secrets) if s]
        if not expected:
            raise InvalidSignature("no clientState secret is configured for this endpoint")
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            raise InvalidSignature("the delivery is not a JSON batch of notifications") from None
        items = payload.get("value") if isinstance(payload, dict) else None
        if not isinstance(items, list) or not items:
            raise InvalidSignature("the delivery holds no notifications")
        for item in items:
            state = item.get(self.field) if isinstance(item, dict) else None
            given = state.encode("utf-8", "surrogateescape") if isinstance(state, str) else b""
            matched = False
            for value in expected:  # every secret is compared (no early exit), as the engine's own schemes do
                matched |= hmac.compare_digest(given, value)
            if not matched:
                raise InvalidSignature(f"a notification's {self.field} does not match")

    def challenge(self, request: WebhookRequest) -> Reply | None:
        """Graph's validation request (``POST ?validationToken=…``, no body, no ``clientState``): echoed."""
        return validation_reply(request.query)

    #: The clientState proves who sent a batch, not what it says: an altered notification keeps it (the handlers
    #: read only IDs from one and read the resource itself from Graph).
    authenticates_body: ClassVar[bool] = False

    def sign_delivery(self, body: bytes, secret: str, now: int) -> tuple[bytes, dict[str, str]]:
        """An example batch as Graph would send it to an endpoint holding ``secret``: every notification carrying
        it as ``clientState`` (the standard suite's signed example; Graph puts no signature in the headers)."""
        payload = json.loads(body)
        items = payload.get("value") if isinstance(payload, dict) else None
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict):
                item[self.field] = secret
        return json.dumps(payload).encode(), {}


def validation_reply(query: Mapping[str, str]) -> Reply | None:
    """The answer to a subscription's validation request, or ``None`` when it is not one.

    The token is echoed as ``text/plain`` (never HTML; the endpoint adds ``nosniff``), and only when it is printable
    and of a sane length: a query string anyone can send must not make the endpoint reflect arbitrary bytes.
    """
    token = query.get("validationToken")
    if token is None:
        return None
    if not token or len(token) > MAX_VALIDATION_TOKEN or not token.isprintable():
        raise TetherError(
            "the validation request carries no usable validationToken", code="invalid_handshake", status=400
        )
    return Reply.text(token)


def notification_items(payload: Any) -> list[dict[str, Any]]:
    """The notifications of a batch (``value``), objects only."""
    items = payload.get("value") if isinstance(payload, dict) else None
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


async def live_notifications(ctx: EventContext) -> list[dict[str, Any]]:
    """The batch's notifications of a live subscription of this endpoint (a stale one's are skipped)."""
    live = []
    for item in notification_items(ctx.payload):
        subscription = str(item.get("subscriptionId", ""))
        if ctx.subscriptions is not None and not await ctx.subscriptions.known(subscription):
            continue
        live.append(item)
    return live


async def apply_lifecycle(ctx: EventContext) -> bool:
    """Act on a batch of lifecycle notifications; ``True`` when the data must be read again (a resync):

    - ``reauthorizationRequired``: the subscription is renewed (``PATCH`` reauthorizes too) at the next scheduler pass;
    - ``subscriptionRemoved``: it is created again at the next pass, and what was missed meanwhile is resynced;
    - ``missed``: some notifications were not delivered, so a resync catches up.
    """
    resync = False
    known = ctx.subscriptions
    for item in await live_notifications(ctx):
        subscription = str(item.get("subscriptionId", ""))
        event = item.get("lifecycleEvent")
        if event == "reauthorizationRequired" and known is not None:
            await known.renew(subscription)
        elif event == "subscriptionRemoved":
            if known is not None:
                await known.removed(subscription)
            resync = True
        elif event == "missed":
            resync = True
    return resync


class GraphSubscriptionWebhook(Webhook):
    """A Graph endpoint whose subscriptions the engine keeps: the key is the Graph ``resource``, the endpoint URL
    the ``notificationUrl`` and ``lifecycleNotificationUrl``, the endpoint secret the ``clientState``. Subclasses set
    ``change_type`` and ``lifetime`` (the resource's maximum, less a margin)."""

    verifier = GraphClientState(secret=EndpointSecret())
    event_type = NOTIFICATION_TYPE
    change_type: ClassVar[str]
    lifetime: ClassVar[timedelta]

    async def subscribe(self, ctx: SubscriptionContext) -> Subscription:
        """Adopt the subscription the app already holds for this URL and resource (a worker that died after Graph
        created it), renewed to a full lifetime; else create one with the endpoint secret as ``clientState``."""
        if not ctx.secret:
            raise ConfigurationError("the endpoint has no secret to use as clientState")
        expires = ctx.now + self.lifetime
        found = await find_subscription(ctx.client, ctx.url, ctx.key)
        if found is not None and isinstance(found.get("id"), str):
            renewed = await renew_subscription(ctx.client, found["id"], expires)
            if renewed is not None:
                held = parse_graph_time(renewed.get("expirationDateTime")) or expires
                return Subscription(ctx.key, found["id"], held)
        created = await create_subscription(
            ctx.client,
            resource=ctx.key,
            change_type=self.change_type,
            notification_url=ctx.url,
            client_state=ctx.secret,
            expires_at=expires,
        )
        return Subscription(ctx.key, created["id"], parse_graph_time(created.get("expirationDateTime")) or expires)

    async def renew(self, ctx: SubscriptionContext, subscription: Subscription) -> Subscription:
        expires = ctx.now + self.lifetime
        renewed = await renew_subscription(ctx.client, subscription.provider_id, expires)
        if renewed is None:
            raise SubscriptionGone("Microsoft Graph no longer has the subscription")
        return Subscription(
            subscription.key, subscription.provider_id, parse_graph_time(renewed.get("expirationDateTime")) or expires
        )

    async def unsubscribe(self, ctx: SubscriptionContext, subscription: Subscription) -> None:
        await delete_subscription(ctx.client, subscription.provider_id)
