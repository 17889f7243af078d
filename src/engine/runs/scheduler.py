"""Reconcile and schedules.

``reconcile(integration_id)`` is called by setup after an integration's first successful connection (and after an
upgrade that adds a ``Product``): every operation with ``Policy(reconcile=True)`` whose product, if it names one, the
grant covers is dispatched (trigger ``reconcile``), and every operation with a
``Policy.schedule`` gets ``OperationState.next_due_at`` (one interval after the reconcile run, or now when the
operation is scheduled but not reconcile-eligible).

``Scheduler.prune_if_due()`` runs retention (``engine.store.retention``) every ``TETHER_RETENTION_PRUNE_SECONDS``
from the scheduler loop (the ``tether scheduler`` processes and the embedded thread alike).

``Scheduler.tick()`` enqueues due runs exactly once however many schedulers run (``tether scheduler`` processes, or
the embedded default's thread). Each due row is *claimed* with a conditional UPDATE::

    UPDATE operation_state SET fence = fence + 1, next_due_at = :next
     WHERE id = :id AND fence = :seen_fence AND next_due_at = :seen_due

in the same transaction that inserts the run. On PostgreSQL a concurrent claimer blocks on the row lock and then
re-checks the WHERE clause against the committed row (fence moved: no match); on SQLite the database write lock
serialises them. Only the winner commits a run, and only after that commit is the message sent. A scheduled run
whose previous run is still queued or running is not piled up: the slot is advanced without a new run.

Each pass also keeps the provider-side webhook subscriptions (``Scheduler.subscriptions``,
``engine.webhooks.subscriptions.maintain_subscriptions``): renewed before they expire, created again when missing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from sqlalchemy import update
from sqlmodel import col, select

from engine.authoring.connections import granted_products
from engine.errors import TetherError
from engine.runs.execution import ensure_state, granted_scopes
from engine.services import Services
from engine.store.retention import Pruned, prune
from engine.store.tables import Integration, IntegrationStatus, OperationState, Run, RunStatus, utcnow
from engine.webhooks.subscriptions import SubscriptionPass, maintain_subscriptions

log = logging.getLogger("tether.scheduler")


class Scheduler:
    def __init__(self, runtime: Services, *, batch: int = 100) -> None:
        self.runtime = runtime
        self.batch = batch
        #: ``time.monotonic()`` of the last retention pass (``None``: none yet, so the first pass prunes).
        self._pruned_at: float | None = None

    # -- retention ---------------------------------------------------------------------------------------------

    def prune_if_due(self) -> Pruned | None:
        """Prune the change feed and the event log (``engine.store.retention``) when
        ``TETHER_RETENTION_PRUNE_SECONDS`` passed since this scheduler's last pass; ``None`` when not due."""
        now = time.monotonic()
        if self._pruned_at is not None and now - self._pruned_at < self.runtime.settings.retention_prune_seconds:
            return None
        self._pruned_at = now
        pruned = prune(self.runtime.db, self.runtime.settings)
        if pruned.changes or pruned.deliveries or pruned.events:
            log.info(
                "retention: pruned %d changes, %d event deliveries, %d events",
                pruned.changes,
                pruned.deliveries,
                pruned.events,
            )
        return pruned

    # -- reconcile ---------------------------------------------------------------------------------------------

    async def reconcile(self, integration_id: str, *, force: bool = False) -> list[str]:
        """Dispatch the reconcile-eligible operations and plan the scheduled ones; returns the run IDs.

        Idempotent: an operation already reconciled (its state has a run) is skipped unless ``force``.
        """
        executor = self.runtime.executor
        with self.runtime.db.session() as session:
            integration = session.get(Integration, integration_id)
        if integration is None:
            raise TetherError(f"no integration {integration_id}", code="not_found", status=404)
        definition = self.runtime.definition(integration.definition_id)
        found = granted_scopes(self.runtime.db, integration, definition)
        products = set(granted_products(found[0].auth, found[1])) if found is not None else set()
        run_ids: list[str] = []
        for operation in definition.operations:
            policy = operation.policy
            if not policy.reconcile and policy.schedule is None:
                continue
            if policy.product is not None and policy.product not in products:
                # Not granted yet: left untouched, so the reconcile after the upgrade that grants it runs it.
                continue
            op_id = operation.operation_id()
            with self.runtime.db.session() as session:
                state = ensure_state(session, integration_id, op_id)
                already = state.last_run_id is not None
            dispatched: str | None = None
            if policy.reconcile and (force or not already) and policy.mode == "queued":
                dispatched = await executor.dispatch(integration_id, op_id, trigger="reconcile")
                run_ids.append(dispatched)
            now = utcnow()
            with self.runtime.db.session() as session:
                state = ensure_state(session, integration_id, op_id)
                if dispatched is not None:
                    state.last_run_id = dispatched
                if policy.schedule is not None and (force or state.next_due_at is None):
                    state.next_due_at = now + policy.schedule if policy.reconcile else now
                state.updated_at = now
                session.add(state)
        return run_ids

    # -- schedules ---------------------------------------------------------------------------------------------

    def tick(self) -> list[str]:
        """Claim every due operation state and enqueue its run; returns the run IDs this scheduler enqueued."""
        now = utcnow()
        with self.runtime.db.session() as session:
            due = session.exec(
                select(OperationState)
                .where(col(OperationState.next_due_at).is_not(None), col(OperationState.next_due_at) <= now)
                .order_by(col(OperationState.next_due_at))
                .limit(self.batch)
            ).all()
        enqueued: list[str] = []
        for state in due:
            try:
                claimed = self._claim(state)
            except TetherError as exc:
                log.warning("schedule of %s/%s skipped: %s", state.integration_id, state.operation, exc.code)
                continue
            if claimed is None:
                continue
            run_id, time_limit = claimed
            try:
                self.runtime.executor.submit(run_id, time_limit=time_limit)
            except TetherError:
                continue
            enqueued.append(run_id)
        return enqueued

    async def subscriptions(self) -> SubscriptionPass:
        """Renew the webhook subscriptions that expire soon (or that a provider asked to reauthorize) and create
        the missing ones; fenced per row, so concurrent schedulers call the provider once per subscription."""
        return await maintain_subscriptions(self.runtime, limit=self.batch)

    def _claim(self, seen: OperationState) -> tuple[str, float] | None:
        """One transaction: the fenced claim, and the run when one is needed. ``None`` when nothing to enqueue."""
        with self.runtime.db.session() as session:
            integration = session.get(Integration, seen.integration_id)
            operation = None
            if integration is not None and self.runtime.enabled(integration.definition_id):
                operation = self.runtime.registry.get(integration.definition_id).operation(seen.operation)
            schedule = operation.policy.schedule if operation is not None else None
            active = integration is not None and integration.status == IntegrationStatus.connected
            now = utcnow()
            next_due = now + schedule if schedule is not None and active else None
            if schedule is not None and seen.next_due_at is not None:
                # Keep the cadence: the next slot after now on the original grid.
                slot = seen.next_due_at + schedule
                while slot <= now:
                    slot += schedule
                next_due = slot if active else None
            won = session.execute(
                update(OperationState)
                .where(
                    col(OperationState.id) == seen.id,
                    col(OperationState.fence) == seen.fence,
                    col(OperationState.next_due_at) == seen.next_due_at,
                )
                .values(fence=OperationState.fence + 1, next_due_at=next_due, updated_at=now)
            ).rowcount
            if not won or not active or operation is None:
                return None
            if seen.last_run_id is not None:
                previous = session.get(Run, seen.last_run_id)
                if previous is not None and previous.status in (RunStatus.queued, RunStatus.running):
                    return None
            assert integration is not None
            run = Run(
                integration_id=integration.id,
                tenant_id=integration.tenant_id,
                operation=operation.operation_id(),
                trigger="schedule",
                config={},
            )
            session.add(run)
            session.flush()
            session.execute(update(OperationState).where(col(OperationState.id) == seen.id).values(last_run_id=run.id))
            return run.id, operation.policy.time_limit.total_seconds()


class SchedulerThread(threading.Thread):
    """The scheduler loop (and a reaper pass) every ``interval`` seconds, in a thread."""

    def __init__(self, runtime: Services, *, interval: float = 5.0, reap: bool = False) -> None:
        super().__init__(name="tether-scheduler", daemon=True)
        self.scheduler = Scheduler(runtime)
        self.runtime = runtime
        self.interval = interval
        self.reap = reap
        self.stopped = threading.Event()

    def run(self) -> None:
        # One event loop for the thread's life: the subscription pass's provider clients are cached per loop
        # (``engine.custody.clientcache``), so a loop per pass would build them anew every few seconds.
        with asyncio.Runner() as runner:
            while not self.stopped.is_set():
                try:
                    self.scheduler.tick()
                    runner.run(self.scheduler.subscriptions())
                    if self.reap:
                        self.runtime.executor.reap_stale()
                    self.scheduler.prune_if_due()
                except Exception as exc:
                    log.warning("scheduler pass failed: %s", type(exc).__name__)
                self.stopped.wait(self.interval)

    def stop(self) -> None:
        self.stopped.set()


async def reconcile(runtime: Services, integration_id: str, *, force: bool = False) -> list[str]:
    """The hook setup calls after an integration's first successful connection."""
    return await Scheduler(runtime).reconcile(integration_id, force=force)
