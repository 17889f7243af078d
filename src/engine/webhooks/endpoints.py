"""Webhook endpoints: one public URL (and, where the scheme needs one, a sealed secret) per integration webhook.

``ensure_endpoints`` gives each of an integration's webhooks a ``webhook_endpoint`` row with an unguessable token
and, for ``EndpointSecret`` schemes, a generated secret sealed by the key ring (AAD ``webhook:{endpoint.id}``, the
one ``Keystore.rewrap_all`` uses). When the webhook class has ``async def register(self, ctx, url)`` it is called
to register the URL at the provider; ``remove_endpoints`` calls ``unregister(self, ctx, ref)`` and retires the rows
(new token, history kept). Webhooks that declare provider-side ``subscriptions`` get them created here and deleted
on unregistering (``engine.webhooks.subscriptions``). Receiving and processing deliveries is
``engine.webhooks.deliveries``.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from sqlmodel import select

from engine.authoring.webhooks import Webhook
from engine.context import EngineContext
from engine.store.database import Database
from engine.store.tables import Integration, WebhookEndpoint, new_id, utcnow
from engine.webhooks.subscriptions import ensure_subscriptions, remove_subscriptions
from engine.webhooks.targets import (
    endpoint_aad,
    endpoint_client,
    endpoint_secret,
    endpoint_url,
    forget_targets,
    insert_for,
    webhook_class,
)
from engine.webhooks.verification import EndpointSecret

log = logging.getLogger("tether.webhooks")


def generate_secret(webhook: type[Webhook]) -> str:
    """A new endpoint secret in the shape the scheme expects (``whsec_`` + base64 for Standard Webhooks)."""
    return webhook.verifier.new_secret()


def static_url(runtime: EngineContext, definition_id: str, webhook: str) -> str:
    return f"{runtime.settings.public_url.rstrip('/')}/v1/webhooks/static/{definition_id}/{webhook}"


# -- endpoint rows ---------------------------------------------------------------------------------------------


@dataclass
class EndpointContext:
    """What a webhook's ``register`` / ``unregister`` hook receives."""

    runtime: EngineContext
    integration: Integration
    endpoint_id: str
    webhook: str
    #: The endpoint's verification secret (``None`` when it comes from operator config).
    secret: str | None
    operator_config: Any
    #: The integration's API client when one can be built from its stored credential, else ``None``.
    client: Any = None


@dataclass(frozen=True)
class EndpointInfo:
    id: str
    webhook: str
    url: str
    static: bool
    registered: bool
    provider_ref: str = ""


async def ensure_endpoints(runtime: EngineContext, integration: Integration) -> list[EndpointInfo]:
    """Create (idempotently) one endpoint row per webhook of the integration's definition and register the
    per-integration ones at the provider when the webhook declares a ``register`` hook."""
    definition = runtime.registry.get(integration.definition_id)
    out: list[EndpointInfo] = []
    for webhook in definition.webhooks:
        row = await anyio.to_thread.run_sync(_ensure_row, runtime, integration.id, webhook)
        register = getattr(webhook, "register", None)
        if register is not None and not webhook.static and row.registered_at is None:
            url = endpoint_url(runtime, row)
            ctx = await _endpoint_context(runtime, integration, row)
            ref = await webhook().register(ctx, url)  # type: ignore[attr-defined]
            row = await anyio.to_thread.run_sync(_mark_registered, runtime.db, row.id, str(ref or ""))
        url = static_url(runtime, definition.id, webhook.name) if webhook.static else endpoint_url(runtime, row)
        out.append(
            EndpointInfo(row.id, webhook.name, url, webhook.static, row.registered_at is not None, row.provider_ref)
        )
    if any(w.subscribes() for w in definition.webhooks):
        await ensure_subscriptions(runtime, integration)
    return out


def _ensure_row(runtime: EngineContext, integration_id: str, webhook: type[Webhook]) -> WebhookEndpoint:
    endpoint_id = new_id()
    values: dict[str, Any] = {
        "id": endpoint_id,
        "integration_id": integration_id,
        "webhook": webhook.name,
        "token": secrets.token_urlsafe(32),
        "key_id": "",
        "secret_ciphertext": None,
        "provider_ref": "",
        "registered_at": None,
        "created_at": utcnow(),
    }
    if isinstance(webhook.verifier.secret, EndpointSecret):
        sealed = runtime.keys.keyring.encrypt(generate_secret(webhook).encode(), aad=endpoint_aad(endpoint_id))
        values["key_id"], values["secret_ciphertext"] = sealed.key_id, sealed.blob
    statement = insert_for(runtime.db)(WebhookEndpoint).values(**values)
    statement = statement.on_conflict_do_nothing(index_elements=["integration_id", "webhook"])
    with runtime.db.session() as session:
        session.execute(statement)
        return session.exec(
            select(WebhookEndpoint).where(
                WebhookEndpoint.integration_id == integration_id, WebhookEndpoint.webhook == webhook.name
            )
        ).one()


def _mark_registered(db: Database, endpoint_id: str, ref: str) -> WebhookEndpoint:
    with db.session() as session:
        row = session.get_one(WebhookEndpoint, endpoint_id)
        row.registered_at, row.provider_ref = utcnow(), ref[:500]
        session.add(row)
        return row


async def _endpoint_context(runtime: EngineContext, integration: Integration, row: WebhookEndpoint) -> EndpointContext:
    client = await endpoint_client(runtime, integration)
    operator_config = runtime.operator_configs.get(integration.definition_id)
    return EndpointContext(
        runtime, integration, row.id, row.webhook, endpoint_secret(runtime, row), operator_config, client
    )


async def unregister_endpoints(runtime: EngineContext, integration: Integration) -> None:
    """Unregister each registered endpoint at the provider (best effort); one that succeeds is marked unregistered
    (so ``ensure_endpoints`` would register it again). Disconnect calls this before revoking the credential, which
    the provider may require for the unregistering call."""
    await remove_subscriptions(runtime, integration)
    with runtime.db.session() as session:
        rows = list(session.exec(select(WebhookEndpoint).where(WebhookEndpoint.integration_id == integration.id)))
    for row in rows:
        webhook = webhook_class(runtime, integration.definition_id, row.webhook)
        unregister = getattr(webhook, "unregister", None) if webhook is not None else None
        if unregister is None or row.registered_at is None or webhook is None:
            continue
        try:
            await webhook().unregister(await _endpoint_context(runtime, integration, row), row.provider_ref)  # type: ignore[attr-defined]
        except Exception as exc:  # the rows go anyway: the provider's deliveries will then get 404
            log.warning("unregistering webhook %s of %s failed: %s", row.webhook, integration.id, type(exc).__name__)
            continue
        await anyio.to_thread.run_sync(_mark_unregistered, runtime.db, row.id)


def _mark_unregistered(db: Database, endpoint_id: str) -> None:
    with db.session() as session:
        row = session.get(WebhookEndpoint, endpoint_id)
        if row is not None:
            row.registered_at, row.provider_ref = None, ""
            session.add(row)


async def remove_endpoints(runtime: EngineContext, integration: Integration) -> int:
    """Disconnect: unregister each endpoint still registered at the provider (best effort), then retire the rows.

    A retired row gets a new random token, so its old public URL answers 404 from now on, while the row and its
    delivery history stay (nothing recorded is lost; a reconnect reuses the row under the new token). Returns the
    number of rows retired."""
    await unregister_endpoints(runtime, integration)
    with runtime.db.session() as session:
        rows = list(session.exec(select(WebhookEndpoint).where(WebhookEndpoint.integration_id == integration.id)))
    with runtime.db.session() as session:
        for row in rows:
            stored = session.get(WebhookEndpoint, row.id)
            if stored is not None:
                stored.token, stored.registered_at, stored.provider_ref = secrets.token_urlsafe(32), None, ""
                session.add(stored)
    forget_targets(integration.id)
    return len(rows)
