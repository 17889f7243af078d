"""Webhook targets: the endpoint a delivery is addressed to, resolved from its public token (or, for a static
webhook, from provider data) with the opened secrets that verify it, and a short-lived per-process cache of them.

The endpoint path resolves a target on every delivery; ``engine.webhooks.endpoints`` drops an integration's targets
when it retires its endpoints (``forget_targets``), so a disconnect is seen at once in this process and within
``TARGET_TTL_SECONDS`` in others.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
from pydantic import SecretStr
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select

from engine.authoring.webhooks import Webhook
from engine.context import EngineContext
from engine.errors import NotFoundError, TetherError
from engine.store.database import Database
from engine.store.tables import Integration, IntegrationStatus, WebhookEndpoint
from engine.webhooks.verification import EndpointSecret, InvalidSignature, OperatorSecret, verify

log = logging.getLogger("tether.webhooks")


def endpoint_aad(endpoint_id: str) -> bytes:
    """The AAD sealing an endpoint's secret (the same as ``Keystore.rewrap_all``)."""
    return f"webhook:{endpoint_id}".encode()


def endpoint_url(runtime: EngineContext, endpoint: WebhookEndpoint) -> str:
    return f"{runtime.settings.public_url.rstrip('/')}/v1/webhooks/{endpoint.token}"


def insert_for(db: Database) -> Any:
    return pg_insert if db.dialect == "postgresql" else sqlite_insert


async def endpoint_client(runtime: EngineContext, integration: Integration) -> Any:
    """The integration's API client when one can be built from its stored credential, else ``None``."""
    client = None
    try:
        definition = runtime.registry.get(integration.definition_id)
        connection = definition.connection(str(integration.provider_data.get("connection", "")))
        if connection is not None and connection.clients:
            stored = runtime.keystore.load(integration.id, connection.credential)
            if stored is not None:
                client = runtime.build_client(integration, connection, stored)
    except TetherError as exc:  # no client: the hook decides whether it can do without
        log.info("no client for webhook registration of %s: %s", integration.id, exc.code)
    return client


def webhook_class(runtime: EngineContext, definition_id: str, name: str) -> type[Webhook] | None:
    if definition_id not in runtime.registry:
        return None
    return next((w for w in runtime.registry.get(definition_id).webhooks if w.name == name), None)


def endpoint_secret(runtime: EngineContext, endpoint: WebhookEndpoint) -> str | None:
    if endpoint.secret_ciphertext is None:
        return None
    return runtime.keys.keyring.decrypt(
        endpoint.key_id, endpoint.secret_ciphertext, aad=endpoint_aad(endpoint.id)
    ).decode()


@dataclass(frozen=True)
class Target:
    """An endpoint a delivery was addressed to, with everything verification and recording need."""

    endpoint_id: str
    integration_id: str
    tenant_id: str
    definition_id: str
    webhook: type[Webhook]
    #: Opened verification secrets: kept out of ``repr`` so they never reach a log line.
    secrets: tuple[str, ...] = field(repr=False)


def _secrets_for(runtime: EngineContext, webhook: type[Webhook], endpoint: WebhookEndpoint | None) -> tuple[str, ...]:
    source = webhook.verifier.secret
    if isinstance(source, OperatorSecret):
        definition_id = next(d.id for d in runtime.registry.definitions() if webhook in d.webhooks)
        config = runtime.operator_configs.get(definition_id)
        value = getattr(config, source.field, None) if config is not None else None
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        return (str(value),) if value else ()
    if isinstance(source, EndpointSecret) and endpoint is not None:
        value = endpoint_secret(runtime, endpoint)
        return (value,) if value else ()
    return ()


def load_target(runtime: EngineContext, token: str) -> Target:
    """The endpoint a public token names; ``NotFoundError`` when there is none (or its integration is gone)."""
    with runtime.db.session() as session:
        found = session.exec(
            select(WebhookEndpoint, Integration)
            .join(Integration, col(Integration.id) == col(WebhookEndpoint.integration_id))
            .where(WebhookEndpoint.token == token)
        ).first()
    if found is None:
        raise NotFoundError("no webhook endpoint at this address")
    endpoint, integration = found
    webhook = webhook_class(runtime, integration.definition_id, endpoint.webhook)
    if webhook is None or webhook.static or integration.status == IntegrationStatus.disconnected:
        raise NotFoundError("no webhook endpoint at this address")
    return Target(
        endpoint.id,
        integration.id,
        integration.tenant_id,
        integration.definition_id,
        webhook,
        _secrets_for(runtime, webhook, endpoint),
    )


#: How long a resolved endpoint (with its opened secrets) is reused before the database is asked again.
TARGET_TTL_SECONDS = 5.0
_TARGET_CACHE_MAX = 10_000
_targets: dict[tuple[int, str], tuple[float, Target]] = {}
_targets_lock = threading.Lock()


def cached_target(runtime: EngineContext, token: str) -> Target | None:
    """A recently resolved endpoint, if any: the hot path of a busy endpoint skips a database read and a decrypt.

    At most ``TARGET_TTL_SECONDS`` old, and dropped at once by ``forget_targets`` when this process retires an
    endpoint; another process's disconnect is seen within the TTL.
    """
    found = _targets.get((id(runtime), token))
    if found is None or found[0] < time.monotonic():
        return None
    return found[1]


def remember_target(runtime: EngineContext, token: str, target: Target) -> None:
    with _targets_lock:
        if len(_targets) >= _TARGET_CACHE_MAX:
            _targets.clear()
        _targets[(id(runtime), token)] = (time.monotonic() + TARGET_TTL_SECONDS, target)


_loading: dict[tuple[int, str], asyncio.Future[Target]] = {}


async def resolve_target(runtime: EngineContext, token: str) -> Target:
    """The endpoint ``token`` names: from the cache (``cached_target``), else loaded in a thread and remembered.

    Concurrent misses for one token share one load. When a busy endpoint's entry expires, every delivery in flight
    misses at once; loading for each of them (a thread hop, a query and a decrypt apiece) stalled the event loop
    for 60-90 ms every ``TARGET_TTL_SECONDS`` under load.
    """
    found = cached_target(runtime, token)
    if found is not None:
        return found
    key = (id(runtime), token)
    loop = asyncio.get_running_loop()
    pending = _loading.get(key)
    if pending is None or pending.get_loop() is not loop:
        pending = _loading[key] = loop.create_task(_load_and_remember(runtime, token))
        pending.add_done_callback(lambda done: _loading.pop(key) if _loading.get(key) is done else None)
    # Shielded: a caller that goes away does not cancel the load the others wait on.
    return await asyncio.shield(pending)


async def _load_and_remember(runtime: EngineContext, token: str) -> Target:
    target = await anyio.to_thread.run_sync(load_target, runtime, token)
    remember_target(runtime, token, target)
    return target


def forget_targets(integration_id: str) -> None:
    with _targets_lock:
        for key in [k for k, (_, t) in _targets.items() if t.integration_id == integration_id]:
            del _targets[key]


def static_secrets(runtime: EngineContext, webhook: type[Webhook]) -> tuple[str, ...]:
    return _secrets_for(runtime, webhook, None)


def verify_delivery(
    webhook: type[Webhook], body: bytes, headers: Mapping[str, str], secrets_: tuple[str, ...], now: float | None = None
) -> None:
    if not secrets_:
        raise InvalidSignature("no verification secret is configured for this endpoint")
    verify(webhook.verifier, body, headers, secrets_, now=now)


def find_static_targets(
    runtime: EngineContext, definition_id: str, webhook: type[Webhook], match: Mapping[str, str]
) -> list[Target]:
    """Every connected integration whose ``provider_data`` has every key of ``match`` (compared as text), with its
    endpoint: an app-wide delivery (one GitHub App installation shared by several tenants' integrations, one
    Graph tenant) is processed for each of them."""
    with runtime.db.session() as session:
        found = session.exec(
            select(Integration, WebhookEndpoint)
            .join(WebhookEndpoint, col(WebhookEndpoint.integration_id) == col(Integration.id))
            .where(
                Integration.definition_id == definition_id,
                Integration.status != IntegrationStatus.disconnected,
                WebhookEndpoint.webhook == webhook.name,
            )
            .order_by(col(Integration.created_at), col(Integration.id))
        ).all()
    return [
        Target(endpoint.id, integration.id, integration.tenant_id, definition_id, webhook, ())
        for integration, endpoint in found
        if all(k in integration.provider_data and str(integration.provider_data[k]) == str(v) for k, v in match.items())
    ]
