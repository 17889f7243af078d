"""Subscriptions held at the provider for an endpoint (``Webhook.subscriptions``: Microsoft Graph's on ``users``).

Graph delivers nothing until a subscription names the endpoint's URL, and a subscription expires (within 29 days for
directory objects), so the engine keeps them:

- ``ensure_subscriptions`` at the first connection (``engine.webhooks.endpoints.ensure_endpoints``) and whenever a
  row is missing, ``removed`` (the provider said so) or ``failed`` (retried after ``RETRY_FAILED``);
- ``maintain_subscriptions`` from the scheduler (``engine.runs.scheduler.SchedulerThread``): renews what expires
  within the webhook's ``renew_before`` or was asked to (a ``reauthorizationRequired``), creates what is missing;
- ``remove_subscriptions`` on disconnect, before the credential is revoked (deleting needs it).

No double subscriptions: each (endpoint, key) is one row, inserted as ``pending`` *before* the provider is called,
and every change of a row is claimed with a fenced ``UPDATE`` (``fence = fence + 1 WHERE fence = seen``), so of two
workers or schedulers only one calls the provider. A worker that died between the provider's answer and the row's
update leaves a ``pending`` row; it is claimed again after ``PENDING_LEASE``, and the webhook's ``subscribe`` adopts
the subscription the provider already holds for that URL and key instead of creating a second one.

Keys are the webhook's fixed ``subscriptions`` (Entra: ``users``, ``groups``), or, for a webhook that lists them
(``Webhook.subscription_keys``; Teams: one per channel), what the provider answers at the first connection and again
every ``list_keys_every`` on the scheduler; a key no longer listed (a channel deleted, a team left) has its
subscription deleted and its row forgotten. When the last listing was is kept per runtime (``_LISTED``): a restarted
process lists once more at its first pass, which creates nothing twice (the rows decide).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import anyio.to_thread
from sqlalchemy import func, or_, update
from sqlmodel import col, select

from engine.authoring.webhooks import Subscription, SubscriptionContext, SubscriptionGone, Webhook
from engine.context import EngineContext
from engine.errors import TetherError
from engine.store.database import Database
from engine.store.tables import (
    Integration,
    IntegrationStatus,
    WebhookEndpoint,
    WebhookSubscription,
    new_id,
    utcnow,
)
from engine.webhooks.targets import endpoint_client, endpoint_secret, endpoint_url, insert_for, webhook_class

log = logging.getLogger("tether.webhooks")
T = TypeVar("T")

#: A ``pending`` row older than this belongs to a worker that died mid-call: it may be claimed again.
PENDING_LEASE = timedelta(minutes=2)
#: A ``failed`` row is retried after this long (the provider refused: not every scheduler pass).
RETRY_FAILED = timedelta(minutes=5)


@dataclass
class SubscriptionPass:
    """What one pass did (row IDs)."""

    created: list[str] = field(default_factory=list)
    renewed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


#: A failed key listing is asked again after this long (the provider refused: not every scheduler pass).
RETRY_LISTING = timedelta(minutes=5)
#: The most keys one endpoint holds subscriptions for (a provider's own limits are per app: a guard, not a plan).
MAX_KEYS = 500

#: When each integration's keys were last listed (or failed to be), per runtime: integration ID → (when, ok). Keyed
#: by the runtime's ``id`` with a weak reference beside it (the runtime is an unhashable dataclass), dropped with it.
_LISTED: dict[int, tuple[weakref.ref[EngineContext], dict[str, tuple[datetime, bool]]]] = {}


def _listings(runtime: EngineContext) -> dict[str, tuple[datetime, bool]]:
    key = id(runtime)
    found = _LISTED.get(key)
    if found is None or found[0]() is not runtime:
        found = (weakref.ref(runtime, lambda _gone, k=key: _LISTED.pop(k, None)), {})
        _LISTED[key] = found
    return found[1]


def _subscribing_webhooks(runtime: EngineContext, definition_id: str) -> list[type[Webhook]]:
    if definition_id not in runtime.registry:
        return []
    return [w for w in runtime.registry.get(definition_id).webhooks if w.subscribes() and not w.static]


def _listing_due(runtime: EngineContext, integration_id: str, every: timedelta, now: datetime) -> bool:
    last = _listings(runtime).get(integration_id)
    if last is None:
        return True
    when, ok = last
    return when <= now - (every if ok else min(every, RETRY_LISTING))


def _listed(runtime: EngineContext, integration_id: str, now: datetime, ok: bool) -> None:
    _listings(runtime)[integration_id] = (now, ok)


# -- rows and claims -------------------------------------------------------------------------------------------


def _claim_create(db: Database, endpoint: WebhookEndpoint, key: str, now: datetime) -> WebhookSubscription | None:
    """The row of (endpoint, key), claimed for creating its subscription; ``None`` when it is active, or being
    created by someone else, or failed too recently."""
    with db.session() as session:
        inserted = session.execute(
            insert_for(db)(WebhookSubscription)
            .values(
                id=new_id(),
                endpoint_id=endpoint.id,
                integration_id=endpoint.integration_id,
                key=key,
                provider_id="",
                status="pending",
                expires_at=None,
                renew_requested=False,
                fence=1,
                error_code="",
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["endpoint_id", "key"])
            .returning(WebhookSubscription.__table__.c.id)  # type: ignore[attr-defined]
        ).first()
        row = session.exec(
            select(WebhookSubscription).where(
                WebhookSubscription.endpoint_id == endpoint.id, WebhookSubscription.key == key
            )
        ).one()
    if inserted is not None:
        return row  # ours: inserted as pending (the unique constraint decides between concurrent workers)
    due = (
        row.status == "removed"
        or (row.status == "failed" and row.updated_at <= now - RETRY_FAILED)
        or (row.status == "pending" and row.updated_at <= now - PENDING_LEASE)
    )
    return _claim(db, row, now, status="pending") if due else None


def _claim(db: Database, seen: WebhookSubscription, now: datetime, **values: Any) -> WebhookSubscription | None:
    """The fenced claim: the row as updated, or ``None`` when someone else changed it since it was read."""
    with db.session() as session:
        won = session.execute(
            update(WebhookSubscription)
            .where(col(WebhookSubscription.id) == seen.id, col(WebhookSubscription.fence) == seen.fence)
            .values(fence=seen.fence + 1, updated_at=now, **values)
        ).rowcount
        if not won:
            return None
        session.commit()
        return session.get_one(WebhookSubscription, seen.id)


def _save(db: Database, row_id: str, fence: int, **values: Any) -> bool:
    """The outcome of a provider call, written only while the claim is still ours."""
    with db.session() as session:
        return bool(
            session.execute(
                update(WebhookSubscription)
                .where(col(WebhookSubscription.id) == row_id, col(WebhookSubscription.fence) == fence)
                .values(fence=fence + 1, updated_at=utcnow(), **values)
            ).rowcount
        )


def _endpoints(db: Database, integration_id: str) -> list[WebhookEndpoint]:
    with db.session() as session:
        return list(session.exec(select(WebhookEndpoint).where(WebhookEndpoint.integration_id == integration_id)))


async def _call(
    runtime: EngineContext,
    integration: Integration,
    endpoint: WebhookEndpoint,
    key: str,
    now: datetime,
    call: Callable[[SubscriptionContext], Awaitable[T]],
) -> T:
    """Run one of the webhook's subscription calls with a context. The client is the runtime's cached one for this
    loop (``engine.custody.clientcache``): not closed here."""
    client = await endpoint_client(runtime, integration)
    ctx = SubscriptionContext(
        integration_id=integration.id,
        key=key,
        url=endpoint_url(runtime, endpoint),
        secret=endpoint_secret(runtime, endpoint),
        client=client,
        operator_config=runtime.operator_configs.get(integration.definition_id),
        now=now,
    )
    return await call(ctx)


def _failure(exc: Exception) -> str:
    return exc.code if isinstance(exc, TetherError) else "provider_error"


# -- the three operations --------------------------------------------------------------------------------------


async def _keys(
    runtime: EngineContext,
    integration: Integration,
    endpoint: WebhookEndpoint,
    webhook: type[Webhook],
    now: datetime,
    list_keys: bool,
) -> Sequence[str]:
    """The keys to hold for the endpoint: the fixed ones; for a webhook that lists them, the provider's answer
    (rows of keys it no longer lists are retired), or without ``list_keys`` the keys of the rows already kept."""
    if not webhook.lists_keys():
        return webhook.subscriptions
    if not list_keys:
        held = await anyio.to_thread.run_sync(_held_rows, runtime.db, integration.id)
        return sorted({r.key for r in held if r.endpoint_id == endpoint.id})
    try:
        listed = await _call(runtime, integration, endpoint, "", now, webhook().subscription_keys)
    except Exception as exc:
        _listed(runtime, integration.id, now, ok=False)
        log.warning("listing the subscription keys of %s/%s failed: %s", webhook.name, integration.id, _failure(exc))
        return await _keys(runtime, integration, endpoint, webhook, now, list_keys=False)
    _listed(runtime, integration.id, now, ok=True)
    keys = list(dict.fromkeys(k for k in listed if k and len(k) <= 200))
    if len(keys) > MAX_KEYS:
        log.warning(
            "%s/%s lists %d subscription keys; only the first %d are held",
            webhook.name,
            integration.id,
            len(keys),
            MAX_KEYS,
        )
        keys = keys[:MAX_KEYS]
    held = await anyio.to_thread.run_sync(_held_rows, runtime.db, integration.id)
    for row in held:
        if row.endpoint_id == endpoint.id and row.key not in keys:
            await _retire(runtime, integration, endpoint, webhook, row, now)
    return keys


async def _retire(
    runtime: EngineContext,
    integration: Integration,
    endpoint: WebhookEndpoint,
    webhook: type[Webhook],
    seen: WebhookSubscription,
    now: datetime,
) -> None:
    """A key the provider no longer lists: delete its subscription (claimed first, so one worker does it) and its
    row. A failed delete is logged: the subscription then expires on its own."""
    row = await anyio.to_thread.run_sync(lambda: _claim(runtime.db, seen, now))
    if row is None:
        return
    if row.provider_id:
        held = Subscription(row.key, row.provider_id, row.expires_at)
        try:
            await _call(runtime, integration, endpoint, row.key, now, lambda c: webhook().unsubscribe(c, held))
        except Exception as exc:
            log.warning("deleting subscription %s of %s failed: %s", row.id, integration.id, _failure(exc))
    await anyio.to_thread.run_sync(_delete_row, runtime.db, row.id)


async def ensure_subscriptions(
    runtime: EngineContext, integration: Integration, *, now: datetime | None = None, list_keys: bool = True
) -> SubscriptionPass:
    """Create each subscription of the integration's webhooks that is missing, removed, or failed a while ago
    (for a webhook that lists its keys, asking them of the provider unless ``list_keys`` is false). A provider's
    refusal is recorded on the row (``failed`` with its code), not raised."""
    out = SubscriptionPass()
    webhooks = {w.name: w for w in _subscribing_webhooks(runtime, integration.definition_id)}
    if not webhooks or integration.status == IntegrationStatus.disconnected:
        return out
    now = now or utcnow()
    for endpoint in await anyio.to_thread.run_sync(_endpoints, runtime.db, integration.id):
        webhook = webhooks.get(endpoint.webhook)
        if webhook is None:
            continue
        for key in await _keys(runtime, integration, endpoint, webhook, now, list_keys):
            row = await anyio.to_thread.run_sync(_claim_create, runtime.db, endpoint, key, now)
            if row is None:
                continue
            try:
                held = await _call(runtime, integration, endpoint, key, now, webhook().subscribe)
            except Exception as exc:
                code = _failure(exc)
                log.warning("subscribing %s/%s of %s failed: %s", webhook.name, key, integration.id, code)
                await anyio.to_thread.run_sync(
                    lambda r=row, c=code: _save(runtime.db, r.id, r.fence, status="failed", error_code=c)
                )
                out.failed.append(row.id)
                continue
            await anyio.to_thread.run_sync(
                lambda r=row, h=held: _save(
                    runtime.db,
                    r.id,
                    r.fence,
                    status="active",
                    provider_id=h.provider_id[:500],
                    expires_at=h.expires_at,
                    renew_requested=False,
                    error_code="",
                )
            )
            out.created.append(row.id)
    return out


def _due_for_renewal(db: Database, now: datetime, horizon: timedelta, limit: int) -> list[WebhookSubscription]:
    with db.session() as session:
        return list(
            session.exec(
                select(WebhookSubscription)
                .where(
                    WebhookSubscription.status == "active",
                    or_(
                        col(WebhookSubscription.renew_requested).is_(True),
                        col(WebhookSubscription.expires_at) <= now + horizon,
                    ),
                )
                .order_by(col(WebhookSubscription.expires_at))
                .limit(limit)
            )
        )


def _connected(db: Database, definitions: list[str]) -> list[Integration]:
    with db.session() as session:
        return list(
            session.exec(
                select(Integration).where(
                    col(Integration.definition_id).in_(definitions),
                    Integration.status == IntegrationStatus.connected,
                )
            )
        )


def _with_inactive_rows(db: Database, integrations: list[Integration]) -> set[str]:
    """Which of ``integrations`` hold a row that is not active (removed, failed, or a pending claim)."""
    if not integrations:
        return set()
    with db.session() as session:
        return set(
            session.exec(
                select(WebhookSubscription.integration_id)
                .where(
                    col(WebhookSubscription.integration_id).in_([i.id for i in integrations]),
                    WebhookSubscription.status != "active",
                )
                .distinct()
            )
        )


async def _maintain_listed(
    runtime: EngineContext, definitions: list[str], now: datetime, out: SubscriptionPass
) -> None:
    """For webhooks that list their keys: list again when due, else re-create only what rows say is missing."""
    every = {
        d: min(w.list_keys_every for w in _subscribing_webhooks(runtime, d) if w.lists_keys()) for d in definitions
    }
    integrations = await anyio.to_thread.run_sync(_connected, runtime.db, definitions)
    inactive = await anyio.to_thread.run_sync(_with_inactive_rows, runtime.db, integrations)
    for integration in integrations:
        due = _listing_due(runtime, integration.id, every[integration.definition_id], now)
        if not due and integration.id not in inactive:
            continue
        found = await ensure_subscriptions(runtime, integration, now=now, list_keys=due)
        out.created += found.created
        out.failed += found.failed


def _integrations_missing_subscriptions(db: Database, expected: dict[str, int]) -> list[Integration]:
    """Connected integrations of the subscribing definitions (``expected``: definition → subscriptions each
    integration should hold) with fewer active rows than that: only they need ``ensure_subscriptions``."""
    if not expected:
        return []
    with db.session() as session:
        integrations = list(
            session.exec(
                select(Integration).where(
                    col(Integration.definition_id).in_(list(expected)),
                    Integration.status == IntegrationStatus.connected,
                )
            )
        )
        active = dict(
            session.exec(
                select(WebhookSubscription.integration_id, func.count())
                .where(WebhookSubscription.status == "active")
                .group_by(WebhookSubscription.integration_id)
            ).all()
        )
    return [i for i in integrations if int(active.get(i.id, 0)) < expected[i.definition_id]]


async def maintain_subscriptions(
    runtime: EngineContext, *, now: datetime | None = None, limit: int = 100
) -> SubscriptionPass:
    """The scheduler's pass: renew what expires soon (or was asked to be), then create what is missing."""
    now = now or utcnow()
    out = SubscriptionPass()
    definitions = [d.id for d in runtime.registry.definitions() if _subscribing_webhooks(runtime, d.id)]
    if not definitions:
        return out
    listing = [d for d in definitions if any(w.lists_keys() for w in _subscribing_webhooks(runtime, d))]
    expected = {
        d: sum(len(w.subscriptions) for w in _subscribing_webhooks(runtime, d)) for d in definitions if d not in listing
    }
    # The widest renew_before of any webhook bounds the query; each row is then checked against its own webhook's.
    horizon = max(w.renew_before for d in definitions for w in _subscribing_webhooks(runtime, d))
    for row in await anyio.to_thread.run_sync(_due_for_renewal, runtime.db, now, horizon, limit):
        await _renew_one(runtime, row, now, out)
    for integration in await anyio.to_thread.run_sync(_integrations_missing_subscriptions, runtime.db, expected):
        found = await ensure_subscriptions(runtime, integration, now=now)
        out.created += found.created
        out.failed += found.failed
    if listing:
        await _maintain_listed(runtime, listing, now, out)
    return out


def _row_context(db: Database, row: WebhookSubscription) -> tuple[Integration, WebhookEndpoint] | None:
    with db.session() as session:
        integration = session.get(Integration, row.integration_id)
        endpoint = session.get(WebhookEndpoint, row.endpoint_id)
    if integration is None or endpoint is None or integration.status != IntegrationStatus.connected:
        return None
    return integration, endpoint


async def _renew_one(runtime: EngineContext, seen: WebhookSubscription, now: datetime, out: SubscriptionPass) -> None:
    found = await anyio.to_thread.run_sync(_row_context, runtime.db, seen)
    if found is None:
        return
    integration, endpoint = found
    webhook = webhook_class(runtime, integration.definition_id, endpoint.webhook)
    if webhook is None or not webhook.subscribes():
        return
    expires = seen.expires_at
    if not seen.renew_requested and expires is not None and expires > now + webhook.renew_before:
        return
    row = await anyio.to_thread.run_sync(lambda: _claim(runtime.db, seen, now))
    if row is None:
        return  # another scheduler renews it
    held = Subscription(row.key, row.provider_id, row.expires_at)
    try:
        renewed = await _call(runtime, integration, endpoint, row.key, now, lambda c: webhook().renew(c, held))
    except SubscriptionGone:
        # Gone at the provider (expired, or removed without telling us): created again in this same pass.
        await anyio.to_thread.run_sync(
            lambda: _save(runtime.db, row.id, row.fence, status="removed", provider_id="", renew_requested=False)
        )
        return
    except Exception as exc:
        code = _failure(exc)
        log.warning("renewing subscription %s of %s failed: %s", row.id, integration.id, code)
        # Still active until it expires: the next pass tries again (the request flag stays).
        await anyio.to_thread.run_sync(lambda: _save(runtime.db, row.id, row.fence, error_code=code))
        out.failed.append(row.id)
        return
    await anyio.to_thread.run_sync(
        lambda: _save(
            runtime.db,
            row.id,
            row.fence,
            provider_id=renewed.provider_id[:500],
            expires_at=renewed.expires_at,
            renew_requested=False,
            error_code="",
        )
    )
    out.renewed.append(row.id)


def _held_rows(db: Database, integration_id: str) -> list[WebhookSubscription]:
    with db.session() as session:
        return list(
            session.exec(select(WebhookSubscription).where(WebhookSubscription.integration_id == integration_id))
        )


def _delete_row(db: Database, row_id: str) -> None:
    with db.session() as session:
        row = session.get(WebhookSubscription, row_id)
        if row is not None:
            session.delete(row)


async def remove_subscriptions(runtime: EngineContext, integration: Integration) -> int:
    """Disconnect: delete every subscription the provider holds for the integration (best effort: one that fails
    expires on its own) and forget the rows. Returns the number deleted at the provider."""
    rows = await anyio.to_thread.run_sync(_held_rows, runtime.db, integration.id)
    endpoints = {e.id: e for e in await anyio.to_thread.run_sync(_endpoints, runtime.db, integration.id)}
    deleted = 0
    now = utcnow()
    for row in rows:
        endpoint = endpoints.get(row.endpoint_id)
        webhook = webhook_class(runtime, integration.definition_id, endpoint.webhook) if endpoint else None
        if row.provider_id and endpoint is not None and webhook is not None and webhook.subscribes():
            try:
                held = Subscription(row.key, row.provider_id, row.expires_at)
                hook = webhook()
                await _call(runtime, integration, endpoint, row.key, now, lambda c, h=held, w=hook: w.unsubscribe(c, h))
                deleted += 1
            except Exception as exc:
                log.warning("deleting subscription %s of %s failed: %s", row.id, integration.id, _failure(exc))
        await anyio.to_thread.run_sync(_delete_row, runtime.db, row.id)
    return deleted


# -- a handler's view ------------------------------------------------------------------------------------------


@dataclass
class EndpointSubscriptions:
    """``EventContext.subscriptions`` for one endpoint (``engine.authoring.webhooks.Subscriptions``)."""

    db: Database
    endpoint_id: str

    def _find(self, provider_id: str) -> WebhookSubscription | None:
        if not provider_id:
            return None
        with self.db.session() as session:
            return session.exec(
                select(WebhookSubscription).where(
                    WebhookSubscription.endpoint_id == self.endpoint_id,
                    WebhookSubscription.provider_id == provider_id[:500],
                )
            ).first()

    async def known(self, provider_id: str) -> bool:
        row = await anyio.to_thread.run_sync(self._find, provider_id)
        return row is not None and row.status == "active"

    def _mark(self, subscription: str, **values: Any) -> bool:
        row = self._find(subscription)
        if row is None or row.status != "active":
            return False
        return _save(self.db, row.id, row.fence, **values)

    async def renew(self, provider_id: str) -> bool:
        return await anyio.to_thread.run_sync(lambda: self._mark(provider_id, renew_requested=True))

    async def removed(self, provider_id: str) -> bool:
        return await anyio.to_thread.run_sync(
            lambda: self._mark(provider_id, status="removed", provider_id="", renew_requested=False)
        )


def list_subscriptions(db: Database, integration_id: str) -> list[WebhookSubscription]:
    return _held_rows(db, integration_id)
