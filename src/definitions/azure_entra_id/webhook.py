"""Graph change notifications for users and groups: a validation handshake, then batches of notifications.

How Graph delivers (https://learn.microsoft.com/graph/change-notifications-delivery-webhooks):

* Creating a subscription, Graph first POSTs to the URL with ``?validationToken=…`` and no body, and expects the
  token back within 10 seconds as ``200 text/plain``. ``handshake`` answers that.
* Each later POST holds ``{"value": [notification, …]}``. Graph does not sign them; instead every notification
  repeats the ``clientState`` secret given when subscribing. A delivery is genuine only if *every* notification
  carries it, compared in constant time.

Graph's scheme is a secret inside the body, so ``GraphClientState`` is this definition's own ``Verifier``: the
engine runs it on the raw body before the delivery is recorded, like any signature check, against the endpoint
secret it generated (and handed Graph as ``clientState`` when subscribing). Notifications carry only IDs, so the
handler dispatches the delta sync, which reads exactly what changed.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel

from definitions.azure_entra_id.operations import DirectorySync
from engine import (
    CelValue,
    EndpointSecret,
    EventContext,
    InvalidSignature,
    Payload,
    ProviderError,
    SecretSource,
    Verifier,
    Webhook,
    WebhookEvent,
)

#: Graph's validation tokens are opaque and short; anything longer is not one.
MAX_VALIDATION_TOKEN = 1024


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


class ChangeNotifications(WebhookEvent):
    """A batch of user or group changes (verified by ``GraphClientState``): run the delta sync once for it."""

    match = "change_notifications"

    async def handle(self, ctx: EventContext) -> AsyncIterator[Payload]:
        items = ctx.payload.get("value", []) if isinstance(ctx.payload, dict) else []
        resources = [str(i.get("resource", "")).lower() for i in items if isinstance(i, dict)]
        if any(r.startswith(("users", "groups")) for r in resources):
            await ctx.dispatch(DirectorySync, {})
        return
        yield  # an async generator that yields nothing


class GraphChangeNotifications(Webhook):
    """One endpoint per integration, used as the ``notificationUrl`` of its Graph subscriptions."""

    name = "change_notifications"
    verifier = GraphClientState(secret=EndpointSecret())
    # Every delivery is the same kind of batch; the handler looks inside.
    event_type = CelValue('"change_notifications"')
    events = (ChangeNotifications,)

    async def handshake(self, payload: Any, headers: dict[str, str],
                        query: Mapping[str, str] | None = None) -> PlainText | None:
        """Answer Graph's validation request from the query string. The engine does not pass the query yet
        (see the README), and without it no delivery is taken for a handshake."""
        return validation_reply(query) if query is not None else None
