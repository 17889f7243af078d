"""The app webhook: one endpoint for every installation, routed to an integration by installation ID.

GitHub signs each delivery with the app's webhook secret (``X-Hub-Signature-256``), names the event in
``X-GitHub-Event`` and identifies the delivery in ``X-GitHub-Delivery`` (used to drop redeliveries).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any, ClassVar

from definitions.github_app.alerts import alert_payload
from engine import (
    Emits,
    EventContext,
    Header,
    HmacSha256,
    OperatorSecret,
    Payload,
    Webhook,
    WebhookEvent,
)


class Ping(WebhookEvent):
    """Sent once when the app's webhook is set up; there is nothing to do but accept it."""

    match = "ping"

    async def handle(self, ctx: EventContext) -> AsyncIterator[Payload]:
        return
        yield  # an async generator that yields nothing


class Installation(WebhookEvent):
    """The app was installed, uninstalled, suspended or had its permissions changed.

    On ``deleted`` the installation's tokens no longer work, so the integration's local state is cleaned up
    through ``ctx.cleanup``, which the delivery processor provides: it releases the integration
    (credentials forgotten, endpoint retired, status ``disconnected``) without calling GitHub, since the
    installation is already gone. ``created`` needs nothing: the install callback binds the installation to its
    integration, and the first connection runs the reconcile operations.
    """

    match = "installation"

    async def handle(self, ctx: EventContext) -> AsyncIterator[Payload]:
        if ctx.payload.get("action") == "deleted" and ctx.cleanup is not None:
            result = ctx.cleanup()
            if inspect.isawaitable(result):
                await result
        return
        yield  # an async generator that yields nothing


class RepositoryEvent(WebhookEvent):
    """A repository was created, renamed, archived, made public or private…: upsert it as an asset at once."""

    match = "repository"
    emits = (Emits("asset", "repository"),)

    async def handle(self, ctx: EventContext) -> AsyncIterator[Payload]:
        yield Payload(schema="asset", variant="repository", data=ctx.payload["repository"],
                      action=ctx.payload.get("action", ""))


class AlertEvent(WebhookEvent):
    """Shared by the three alert events: every action (created, fixed, dismissed, reopened…) upserts the alert.

    The payload is the alert and its repository, the shape the alert syncs build (``alerts.alert_payload``).
    """

    variant: ClassVar[str]

    async def handle(self, ctx: EventContext) -> AsyncIterator[Payload]:
        payload = alert_payload(self.variant, ctx.payload["alert"], ctx.payload["repository"])
        yield replace(payload, action=ctx.payload.get("action", ""))


class DependabotAlert(AlertEvent):
    """A Dependabot alert was created, fixed, dismissed, reopened or reintroduced."""

    match = "dependabot_alert"
    variant = "dependabot_alert"
    emits = (Emits("vulnerability", "dependabot_alert"),)


class CodeScanningAlert(AlertEvent):
    """A code-scanning alert was created, fixed, closed or reopened, or appeared in a branch."""

    match = "code_scanning_alert"
    variant = "code_scanning_alert"
    emits = (Emits("vulnerability", "code_scanning_alert"),)


class SecretScanningAlert(AlertEvent):
    """A secret-scanning alert was created, resolved, reopened or validated."""

    match = "secret_scanning_alert"
    variant = "secret_scanning_alert"
    emits = (Emits("vulnerability", "secret_scanning_alert"),)


class GitHubAppWebhook(Webhook):
    """The webhook URL configured in the GitHub App's settings."""

    name = "app"
    static = True
    verifier = HmacSha256(header="X-Hub-Signature-256", prefix="sha256=",
                          secret=OperatorSecret("webhook_secret"))
    delivery_id = Header("X-GitHub-Delivery")
    event_type = Header("X-GitHub-Event")
    events = (Ping, Installation, RepositoryEvent, DependabotAlert, CodeScanningAlert, SecretScanningAlert)

    async def route(self, payload: Any, headers: dict[str, str]) -> dict[str, str] | None:
        """Select the integration whose ``provider_data.installation_id`` matches (``ping`` carries none)."""
        installation = payload.get("installation") if isinstance(payload, dict) else None
        if not isinstance(installation, dict) or "id" not in installation:
            return None
        return {"installation_id": str(installation["id"])}
