"""Graph change notifications for users and groups: a validation handshake, then batches of notifications.

How Graph delivers (https://learn.microsoft.com/graph/change-notifications-delivery-webhooks):

* Creating a subscription, Graph first POSTs to the URL with ``?validationToken=…`` and no body, and expects the
  token back within 10 seconds as ``200 text/plain``. ``GraphClientState.challenge`` answers that.
* Each later POST holds ``{"value": [notification, …]}``. Graph does not sign them; instead every notification
  repeats the ``clientState`` secret given when subscribing. A delivery is genuine only if *every* notification
  carries it, compared in constant time.

Graph's scheme is a secret inside the body, so ``GraphClientState`` is this definition's own ``Verifier``: the
engine runs it on the raw body before the delivery is recorded, like any signature check, against the endpoint
secret it generated (and handed Graph as ``clientState`` when subscribing). Its ``challenge`` answers the validation
request, which carries no secret by Graph's design. Notifications carry only IDs, so the handler dispatches the
delta sync, which reads exactly what changed. The subscriptions themselves (one on ``users``, one on ``groups``) are
kept by the engine (``Webhook.subscriptions``) through ``subscribe`` / ``renew`` / ``unsubscribe`` below.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from definitions.azure_entra_id.operations import DirectorySync
from definitions.microsoft_graph import (
    DIRECTORY_SUBSCRIPTION_LIFETIME,
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
    Payload,
    Reply,
    SecretSource,
    Subscription,
    SubscriptionContext,
    SubscriptionGone,
    TetherError,
    Verifier,
    Webhook,
    WebhookEvent,
    WebhookRequest,
)

#: Graph's validation tokens are opaque and short; anything longer is not one.
MAX_VALIDATION_TOKEN = 1024
#: What the subscriptions on users and groups report (Graph reports a created user as ``updated``).
CHANGE_TYPE = "updated,deleted"


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


def validation_reply(query: Mapping[str, str]) -> Reply | None:
    """The answer to a subscription's validation request, or ``None`` when it is not one.

    The token is echoed as ``text/plain`` (never HTML; the endpoint adds ``nosniff``), and only when it is printable
    and of a sane length: a query string anyone can send must not make the endpoint reflect arbitrary bytes.
    """
    token = query.get("validationToken")
    if token is None:
        return None
    if not token or len(token) > MAX_VALIDATION_TOKEN or not token.isprintable():
        raise TetherError("the validation request carries no usable validationToken", code="invalid_handshake",
                          status=400)
    return Reply.text(token)


def _items(payload: Any) -> list[dict[str, Any]]:
    items = payload.get("value") if isinstance(payload, dict) else None
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


class ChangeNotifications(WebhookEvent):
    """A batch of user or group changes (verified by ``GraphClientState``): run the delta sync once for it.

    Only notifications of a live subscription of this endpoint count: one of a subscription we deleted or replaced
    (Graph keeps delivering for a while) carries the same ``clientState`` but is stale, and is skipped.
    """

    match = "change_notifications"

    async def handle(self, ctx: EventContext) -> AsyncIterator[Payload]:
        live = []
        for item in _items(ctx.payload):
            subscription = str(item.get("subscriptionId", ""))
            if ctx.subscriptions is not None and not await ctx.subscriptions.known(subscription):
                continue
            live.append(str(item.get("resource", "")).lower())
        if any(r.startswith(("users", "groups")) for r in live):
            await ctx.dispatch(DirectorySync, {})
        return
        yield  # an async generator that yields nothing


class LifecycleNotifications(WebhookEvent):
    """Graph's lifecycle notifications (https://learn.microsoft.com/graph/change-notifications-lifecycle-events):

    - ``reauthorizationRequired``: the subscription is renewed (``PATCH`` reauthorizes too) at the next scheduler pass;
    - ``subscriptionRemoved``: it is created again at the next pass, and the delta sync fetches what was missed;
    - ``missed``: some notifications were not delivered, so the delta sync catches up.
    """

    match = "lifecycle_notifications"

    async def handle(self, ctx: EventContext) -> AsyncIterator[Payload]:
        resync = False
        for item in _items(ctx.payload):
            subscription = str(item.get("subscriptionId", ""))
            known = ctx.subscriptions
            if known is not None and not await known.known(subscription):
                continue  # a stale subscription's: nothing of ours to renew or re-create
            event = item.get("lifecycleEvent")
            if event == "reauthorizationRequired" and known is not None:
                await known.renew(subscription)
            elif event == "subscriptionRemoved":
                if known is not None:
                    await known.removed(subscription)
                resync = True
            elif event == "missed":
                resync = True
        if resync:
            await ctx.dispatch(DirectorySync, {})
        return
        yield  # an async generator that yields nothing


class GraphChangeNotifications(Webhook):
    """One endpoint per integration: the ``notificationUrl`` and ``lifecycleNotificationUrl`` of its Graph
    subscriptions on ``users`` and ``groups``, which the engine creates, renews and deletes through the hooks below."""

    name = "change_notifications"
    verifier = GraphClientState(secret=EndpointSecret())
    # A batch is lifecycle notifications (each item has ``lifecycleEvent``) or change notifications, never mixed.
    event_type = CelValue(
        'has(payload.value) && size(payload.value) > 0 && has(payload.value[0].lifecycleEvent)'
        ' ? "lifecycle_notifications" : "change_notifications"'
    )
    events = (ChangeNotifications, LifecycleNotifications)
    subscriptions = ("users", "groups")
    renew_before = timedelta(days=3)

    async def subscribe(self, ctx: SubscriptionContext) -> Subscription:
        """Adopt the subscription the app already holds for this URL and resource (a worker that died after Graph
        created it), renewed to a full lifetime; else create one with the endpoint secret as ``clientState``."""
        if not ctx.secret:
            raise ConfigurationError("the endpoint has no secret to use as clientState")
        expires = ctx.now + DIRECTORY_SUBSCRIPTION_LIFETIME
        found = await find_subscription(ctx.client, ctx.url, ctx.key)
        if found is not None and isinstance(found.get("id"), str):
            renewed = await renew_subscription(ctx.client, found["id"], expires)
            if renewed is not None:
                held = parse_graph_time(renewed.get("expirationDateTime")) or expires
                return Subscription(ctx.key, found["id"], held)
        created = await create_subscription(ctx.client, resource=ctx.key, change_type=CHANGE_TYPE,
                                            notification_url=ctx.url, client_state=ctx.secret, expires_at=expires)
        return Subscription(ctx.key, created["id"], parse_graph_time(created.get("expirationDateTime")) or expires)

    async def renew(self, ctx: SubscriptionContext, subscription: Subscription) -> Subscription:
        expires = ctx.now + DIRECTORY_SUBSCRIPTION_LIFETIME
        renewed = await renew_subscription(ctx.client, subscription.provider_id, expires)
        if renewed is None:
            raise SubscriptionGone("Microsoft Graph no longer has the subscription")
        return Subscription(subscription.key, subscription.provider_id,
                            parse_graph_time(renewed.get("expirationDateTime")) or expires)

    async def unsubscribe(self, ctx: SubscriptionContext, subscription: Subscription) -> None:
        await delete_subscription(ctx.client, subscription.provider_id)
