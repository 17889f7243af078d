"""Graph change notifications for users and groups: a validation handshake, then batches of notifications.

How Graph delivers (https://learn.microsoft.com/graph/change-notifications-delivery-webhooks):

* Creating a subscription, Graph first POSTs to the URL with ``?validationToken=…`` and no body, and expects the
  token back within 10 seconds as ``200 text/plain``. ``handshake`` answers that.
* Each later POST holds ``{"value": [notification, …]}``. Graph does not sign them; instead every notification
  repeats the ``clientState`` secret given when subscribing. A delivery is genuine only if *every* notification
  carries it, compared in constant time.

The engine's verifier set has no scheme for a secret inside the body, so ``GraphClientState`` declares the check
here and ``ChangeNotifications`` performs it itself against the endpoint secret the engine hands it
(``ctx.extras["endpoint_secret"]``), refusing the delivery when that is absent. Notifications carry only IDs,
so the handler dispatches the delta sync, which reads exactly what changed.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel

from definitions.azure_entra_id.operations import DirectorySync
from engine import CelValue, EndpointSecret, EventContext, Payload, ProviderError, Webhook, WebhookEvent

#: Graph's validation tokens are opaque and short; anything longer is not one.
MAX_VALIDATION_TOKEN = 1024


@dataclass(frozen=True, kw_only=True)
class GraphClientState:
    """Every item of ``value`` carries ``clientState`` equal to the endpoint's secret (set when subscribing)."""

    secret: EndpointSecret
    field: str = "clientState"


class PlainText(BaseModel):
    """A reply the provider expects as ``text/plain`` rather than JSON."""

    media_type: ClassVar[str] = "text/plain"
    body: str


def validation_reply(query: Mapping[str, str]) -> PlainText | None:
    """The handshake answer for a subscription's validation request, or ``None`` when it is not one.

    The token is echoed as plain text (never HTML), and only when it is printable and of a sane length.
    """
    token = query.get("validationToken")
    if token is None:
        return None
    if not token or len(token) > MAX_VALIDATION_TOKEN or not token.isprintable():
        raise ProviderError("the validation request carries no usable validationToken", code="invalid_handshake")
    return PlainText(body=token)


def verify_client_state(payload: Any, expected: str | None) -> list[dict[str, Any]]:
    """The notifications of a delivery, once every one carries the expected ``clientState``."""
    if not expected:
        raise ProviderError("the endpoint has no clientState secret to check notifications against",
                            code="webhook_unverified")
    items = payload.get("value") if isinstance(payload, dict) else None
    if not isinstance(items, list) or not items:
        raise ProviderError("the delivery holds no notifications", code="webhook_unverified")
    for item in items:
        state = item.get("clientState") if isinstance(item, dict) else None
        if not isinstance(state, str) or not hmac.compare_digest(state.encode(), expected.encode()):
            raise ProviderError("a notification's clientState does not match", code="webhook_unverified")
    return items


class ChangeNotifications(WebhookEvent):
    """A batch of user or group changes: verify it, then run the delta sync once for the whole batch."""

    match = "change_notifications"

    async def handle(self, ctx: EventContext) -> AsyncIterator[Payload]:
        items = verify_client_state(ctx.payload, ctx.extras.get("endpoint_secret"))
        if any(str(i.get("resource", "")).lower().startswith(("users", "groups")) for i in items):
            await ctx.dispatch(DirectorySync, {})
        return
        yield  # an async generator that yields nothing


class GraphChangeNotifications(Webhook):
    """One endpoint per integration, used as the ``notificationUrl`` of its Graph subscriptions."""

    name = "change_notifications"
    verifier = GraphClientState(secret=EndpointSecret())  # type: ignore[assignment]
    # Every delivery is the same kind of batch; the handler looks inside.
    event_type = CelValue('"change_notifications"')
    events = (ChangeNotifications,)

    async def handshake(self, payload: Any, headers: dict[str, str],
                        query: Mapping[str, str] | None = None) -> PlainText | None:
        """Answer Graph's validation request from the query string. The engine does not pass the query yet
        (see the README), and without it no delivery is taken for a handshake."""
        return validation_reply(query) if query is not None else None
