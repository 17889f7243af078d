"""Event hooks: Okta calls this endpoint when users or group memberships change, and a sync follows.

Each integration has its own endpoint. Okta sends the header configured on the hook verbatim, on the verification
request and on every delivery, so the hook is set up with ``Authorization: <endpoint secret>`` (``Bearer <secret>``
is accepted too), compared in constant time. Before Okta activates a hook it verifies the URL once: a ``GET``
carrying ``X-Okta-Verification-Challenge``, answered with ``{"verification": <that value>}``
(https://developer.okta.com/docs/concepts/event-hooks/#one-time-verification-request).

An event hook delivery names its events' targets but not their full current state, so instead of mapping
partial objects the handler dispatches a ``DirectorySync`` (queued, deduplicated by the runtime).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from definitions.okta.operations import DirectorySync
from engine import (
    EndpointSecret,
    EventContext,
    JsonField,
    Payload,
    SharedSecretHeader,
    Webhook,
    WebhookEvent,
    WebhookRequest,
)

#: Okta event types after which the directory is out of date.
DIRECTORY_EVENTS = frozenset({
    "user.lifecycle.create",
    "user.lifecycle.activate",
    "user.lifecycle.deactivate",
    "user.lifecycle.suspend",
    "user.lifecycle.unsuspend",
    "user.lifecycle.delete.completed",
    "user.account.update_profile",
    "group.user_membership.add",
    "group.user_membership.remove",
    "group.lifecycle.create",
    "group.lifecycle.delete",
    "group.profile.updated",
})
VERIFICATION_HEADER = "x-okta-verification-challenge"
#: Okta's challenges are ~40 characters; a longer value is not echoed.
MAX_CHALLENGE = 1024


class EventHookDelivery(WebhookEvent):
    """One delivery (``eventType`` is always ``com.okta.event_hook``) carrying up to 50 events."""

    match = "com.okta.event_hook"

    async def handle(self, ctx: EventContext) -> AsyncIterator[Payload]:
        events = ((ctx.payload or {}).get("data") or {}).get("events") or []
        if any(isinstance(e, dict) and e.get("eventType") in DIRECTORY_EVENTS for e in events):
            await ctx.dispatch(DirectorySync, {})
        return
        yield  # an async generator that yields nothing


class OktaEventHook(Webhook):
    """The URL registered under Workflow → Event Hooks in the Okta Admin Console."""

    name = "event_hook"
    verifier = SharedSecretHeader(secret=EndpointSecret(), header="Authorization", schemes=("", "Bearer "))
    event_type = JsonField("eventType")
    delivery_id = JsonField("eventId")
    events = (EventHookDelivery,)
    # The one-time verification is a GET; deliveries are POSTs.
    methods = frozenset({"GET", "POST"})

    async def handshake(self, request: WebhookRequest) -> dict[str, Any] | None:
        """Answer the one-time verification ``GET`` (already verified by its ``Authorization``) by echoing its
        challenge header; a ``POST`` is a delivery, never a verification."""
        if request.method != "GET":
            return None
        challenge = request.header(VERIFICATION_HEADER)
        if not challenge or len(challenge) > MAX_CHALLENGE or not challenge.isprintable():
            return None
        return {"verification": challenge}
