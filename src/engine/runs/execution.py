"""The one execution path of operations (DESIGN.md §6).

Every trigger (API call, first-connection reconcile, schedule, workflow, webhook) ends in ``Executor.execute(run_id)``:

1. **claim** the run with a conditional UPDATE (``queued → running``, ``attempts + 1``): a duplicate message, a run
   already finished or cancelled, or one another worker holds is skipped, so redelivery is harmless;
2. load the integration, its definition and the operation; validate the stored config;
3. resolve the credential through the Keystore (custody refreshes an OAuth token first when it is due) and build or
   reuse the client (``Runtime.build_client``);
4. run ``run()`` (the raw result is stored on the run) or ``ingest()`` (payloads go to the shared ingest pipeline in
   batches; it adds its counts to the run row itself). The incremental cursor of ``OperationState`` is passed in
   ``ctx.cursor`` and ``ctx.next_cursor`` is saved only when the run succeeds;
5. **finish** with a conditional UPDATE (``WHERE status = 'running'``), so a cancel that landed meanwhile wins. A
   run that ends ``succeeded`` or ``failed`` writes its ``run.*`` event (and an ingest run its ``records.changed``)
   into the outbox in that same transaction (``engine.events.outbox``).

While a run executes, the process's heartbeat (``engine.runs.heartbeat``) stamps ``run.heartbeat_at``; when that UPDATE
finds the run no longer ``running`` (cancelled), the operation is cancelled. The reaper (``reap_stale``) finds runs
whose heartbeat stopped (a worker killed mid-run) and retries them, or ends them ``stalled`` (``worker_lost``) when
no retry is left. Claims, finishes and run creation of concurrent runs are batched into shared statements
(``engine.runs.runstore``, ``engine.store.batching``).

A run never reports ``succeeded`` for work it did not finish (issue 23): a watchdog (``engine.runs.progress``) stops a
run that makes no progress for its stall window (``no_progress``, retried like a transient failure), and an error
whose class ``stalls`` (a provider's pagination that loops or ends before the provider's own count) ends the run
``stalled`` with the error's code, as does a lost worker out of retries.

Before a run is recorded, ``dispatch`` and ``run_inline`` (so every trigger) refuse an integration that is not
``connected`` (``integration_not_connected``, or ``reconnect_required``: 409) and a ``write`` operation whose grant
lacks the write tier's scopes (``upgrade_required``, 403, with the URL that starts the upgrade): nothing is queued
and the provider is never called. A run queued while the integration was connected and claimed after it was
disconnected fails with the same code. Unknown fields of an operation's config are refused (``invalid_input``,
naming the field) unless its config model allows extra fields.

Errors are classified once here: rate limited (a 429 with ``Retry-After``) → *defer* (back to ``queued``, the
worker re-enqueues the message with that delay); transient (``ProviderUnavailable``, a retryable provider error,
5xx, network errors) → *retry* with exponential backoff while the operation's ``max_retries`` allows; anything else
→ ``failed``. Messages recorded on a run are the error's own (Tether errors never hold secrets or provider bodies)
with every credential value scrubbed; unexpected exceptions are recorded by type only.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import psycopg
from pydantic import BaseModel, ValidationError
from sqlalchemy import select as sa_select
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from engine.authoring.connections import OAuth2, missing_product_scopes, missing_write_scopes
from engine.authoring.definition import Definition
from engine.authoring.operations import Checkpoint, Operation, OperationContext, Payload, UpgradeRequired
from engine.context import EngineContext
from engine.errors import NotFoundError, ProviderError, TetherError, ValidationFailed
from engine.events.outbox import NewEvent, emit, run_event
from engine.governor import BucketKey, governed
from engine.governor.scope import Scope
from engine.integrations.lifecycle import require_connected
from engine.kit.reaching import TRANSPORT_ERRORS
from engine.observability import metrics, tracing
from engine.observability.logs import add_log_ids, leaves, log_context
from engine.runs import loopstore, progress
from engine.runs.heartbeat import Heartbeats
from engine.runs.runstore import (
    Claimed,
    NewRun,
    Success,
    beat_runs,
    claim_runs,
    create_runs,
    new_run,
    succeed_runs,
)
from engine.runs.snapshots import remove_unconfirmed
from engine.settings import Settings
from engine.store.batching import Coalescer
from engine.store.tables import Credential, Integration, OperationState, Run, RunStatus, utcnow

if TYPE_CHECKING:
    from engine.custody.tokens import Custody

#: Hands a queued run to the queue: ``enqueue(run_id, delay_seconds, time_limit_seconds)`` (``engine.queue.worker``'s).
Enqueue = Callable[[str, float | None, float | None], None]
#: Hands several at once: ``[(run_id, time_limit_seconds, trace context)]`` → per run ``None`` (sent) or the error.
EnqueueMany = Callable[[list[tuple[str, float | None, Any]]], Sequence[BaseException | None]]
log = logging.getLogger("tether.execution")

TERMINAL = frozenset({RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled, RunStatus.stalled})
#: Extra attempts a rate-limited run may spend on deferrals beyond the operation's ``max_retries``.
RATE_LIMIT_ALLOWANCE = 25
TRIGGERS = frozenset({"api", "reconcile", "schedule", "workflow", "webhook", "manual", "mcp"})


class RunCancelled(TetherError):
    code = "run_cancelled"
    status = 409


class TimeLimitExceeded(TetherError):
    code = "time_limit_exceeded"
    status = 504


class WorkerLost(TetherError):
    code = "worker_lost"
    stalls = True


class NoProgress(TetherError):
    """The run made no progress for its stall window: retried like a transient failure, else ``stalled``."""

    code = "no_progress"
    status = 504
    stalls = True
    retryable = True


class UnexpectedError(TetherError):
    code = "operation_error"
    status = 500


class InvalidTrigger(TetherError):
    code = "invalid_trigger"
    status = 422


@dataclass
class RunOutcome:
    """What one ``execute`` call did.

    ``status`` is the run's status afterwards. ``retry_in`` (seconds) is set when the run went back to ``queued``
    for another attempt: the caller (the worker) re-enqueues it with that delay; ``deferred`` says it was a rate
    limit rather than a transient failure. ``skipped`` means this call did not run it (a duplicate delivery, a
    run already finished, cancelled or running elsewhere).
    """

    run_id: str
    status: RunStatus
    result: Any = None
    error_code: str = ""
    error_message: str = ""
    retry_in: float | None = None
    deferred: bool = False
    skipped: bool = False


@dataclass
class ExecutorOptions:
    """Tunables (seconds). Tests shrink them; production keeps the defaults."""

    heartbeat_interval: float = 10.0
    #: A running run whose heartbeat is older than this is considered orphaned by a dead worker.
    stale_after: float = 60.0
    retry_min_backoff: float = 15.0
    retry_max_backoff: float = 3600.0
    #: Payloads per call to the ingest pipeline (one transaction each).
    ingest_batch: int = 500
    #: Upper bound of a single deferral (a provider asking for a day is capped here and asked again).
    max_defer: float = 3600.0
    #: Default stall window: a run without progress this long is stopped (``Policy.stall_window`` overrides; 0 off).
    stall_after: float = 600.0

    @classmethod
    def from_settings(cls, settings: Settings) -> ExecutorOptions:
        return cls(
            heartbeat_interval=settings.run_heartbeat_seconds,
            stale_after=settings.run_stale_seconds,
            retry_min_backoff=settings.retry_min_backoff_seconds,
            retry_max_backoff=settings.retry_max_backoff_seconds,
            stall_after=settings.run_stall_seconds,
        )


# -- the run record as callers see it ------------------------------------------------------------------------


class RunView(BaseModel):
    """The run record: one shape for inline and queued runs, for the API and for Python callers."""

    id: str
    integration_id: str
    operation: str
    trigger: str
    #: An enum in the OpenAPI document, so clients see ``stalled`` among the statuses (issue 23).
    status: RunStatus
    config: dict[str, Any]
    result: Any | None
    attempts: int
    payloads_out: int
    records_ingested: int
    records_filtered: int
    records_rejected: int
    error_code: str
    error_message: str
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None

    @classmethod
    def of(cls, run: Run) -> RunView:
        started, finished = _aware(run.started_at), _aware(run.finished_at)
        duration = int((finished - started).total_seconds() * 1000) if started and finished else None
        return cls(
            id=run.id,
            integration_id=run.integration_id,
            operation=run.operation,
            trigger=run.trigger,
            status=RunStatus(run.status),
            config=run.config or {},
            result=run.result,
            attempts=run.attempts,
            payloads_out=run.payloads_out,
            records_ingested=run.records_ingested,
            records_filtered=run.records_filtered,
            records_rejected=run.records_rejected,
            error_code=run.error_code,
            error_message=run.error_message,
            queued_at=_aware(run.queued_at),  # type: ignore[arg-type]
            started_at=started,
            finished_at=finished,
            duration_ms=duration,
        )


@dataclass
class InlineResult:
    result: Any
    run: RunView


# -- classification ---------------------------------------------------------------------------------------------


def rate_limit_delay(exc: BaseException) -> float | None:
    """Seconds to defer for a provider rate limit, else None: a ``ProviderError`` with status 429 or coded
    ``rate_limited`` whatever its status (``RateLimited`` is; GitHub's primary limit and Google's quota errors are
    403s, Graph's throttling can be a 503 with ``Retry-After``)."""
    if not isinstance(exc, ProviderError) or (exc.provider_status != 429 and exc.code != "rate_limited"):
        return None
    return max(0.0, exc.retry_after if exc.retry_after is not None else 60.0)


def is_transient(exc: BaseException) -> bool:
    """Worth another attempt: unreachable provider, 5xx, a provider error marked retryable, network errors."""
    if isinstance(exc, TetherError):
        if getattr(exc, "retryable", False):
            return True
        status = getattr(exc, "provider_status", None)
        return isinstance(exc, ProviderError) and status is not None and (status >= 500 or status in (408, 425))
    return isinstance(exc, TRANSPORT_ERRORS)


# -- the executor -----------------------------------------------------------------------------------------------


class Executor:
    """The one execution path of operations. It reads the engine context, asks custody for fresh tokens, and hands
    queued runs to ``enqueue``; the composition root (``engine.runtime``) builds it with all three."""

    def __init__(
        self,
        context: EngineContext,
        custody: Custody,
        options: ExecutorOptions | None = None,
        *,
        enqueue: Enqueue,
        enqueue_many: EnqueueMany | None = None,
    ) -> None:
        self.context = context
        self.custody = custody
        self.options = options or ExecutorOptions.from_settings(context.settings)
        self.enqueue = enqueue
        #: The batched form of the ``enqueue`` given here; used only while ``enqueue`` is still that one (a caller
        #: that replaces ``enqueue`` afterwards, as tests do, has every message go through its own).
        self.enqueue_many = enqueue_many
        self._batched_enqueue = enqueue
        #: Set (per batch thread) while a batch of created runs collects its messages for ``enqueue_many``.
        self._sending = threading.local()
        self._pipeline: Any = None
        db = context.db
        # Concurrent runs share their database round trips (engine.store.batching): one INSERT for the runs dispatched
        # together, one claim and one finish for the runs a worker executes together, one heartbeat for all.
        # Four creations in flight (the coalescer's four threads): an API server's dispatches each wait for their
        # run's commit and message, so those arriving meanwhile start the next INSERT instead of waiting for that
        # commit (16 concurrent dispatchers, loaded 2-core VM: ~1,100 runs/s with two in flight, ~1,450 with four).
        self._creates: Coalescer[NewRun, Run] = Coalescer("create-runs", self._create_batch, max_in_flight=4)
        self._claims: Coalescer[str, Claimed | None]
        self._successes: Coalescer[Success, bool]
        if db.dialect == "postgresql":
            # One autocommit statement a batch, awaited on the loop's own connections (engine.runs.loopstore).
            self._claims = Coalescer("claim-runs", self._claim_on_loop)
            self._successes = Coalescer("finish-runs", self._succeed_on_loop)
        else:
            self._claims = Coalescer("claim-runs", lambda ids: claim_runs(db, ids))
            self._successes = Coalescer("finish-runs", lambda items: succeed_runs(db, items))
        self.heartbeats = Heartbeats(lambda ids: beat_runs(db, ids), self.options.heartbeat_interval)

    # -- claims and finishes on the loop (PostgreSQL) ------------------------------------------------------

    async def _claim_on_loop(self, run_ids: list[str]) -> list[Claimed | None]:
        connections = self.context.db.loop_connection_for("claim-runs")
        try:
            return await loopstore.claim(connections, run_ids)
        except psycopg.OperationalError as exc:
            # The loop's connection was lost (loopdb dropped it): once more on a new one. If the first attempt did
            # commit, its runs are ``running`` now and answer ``None`` (skipped); the reaper recovers them.
            log.info("claim connection lost (%s); retrying the batch once", type(exc).__name__)
            return await loopstore.claim(connections, run_ids)

    async def _succeed_on_loop(self, items: list[Success]) -> list[bool]:
        """Results-only successes in one statement on the loop; the others (operation state, records, or a tenant
        with event endpoints) in one transaction with their outbox rows, in a thread (``runstore.succeed_runs``)."""
        answers: dict[int, bool] = {}
        fast = [index for index, item in enumerate(items) if loopstore.fast_finish(item)]
        if fast:
            connections = self.context.db.loop_connection_for("finish-runs")
            batch = [items[index] for index in fast]
            try:
                moved = await loopstore.succeed(connections, batch)
            except psycopg.OperationalError as exc:  # as for the claim; repeating a finish is harmless
                log.info("finish connection lost (%s); retrying the batch once", type(exc).__name__)
                moved = await loopstore.succeed(connections, batch)
            if moved is not None:
                answers.update(zip(fast, moved, strict=True))
        slow = [index for index in range(len(items)) if index not in answers]
        if slow:
            db = self.context.db
            moved = await asyncio.get_running_loop().run_in_executor(
                None, succeed_runs, db, [items[index] for index in slow]
            )
            answers.update(zip(slow, moved, strict=True))
        return [answers[index] for index in range(len(items))]

    # -- dispatch ----------------------------------------------------------------------------------------------

    async def dispatch(
        self,
        integration_id: str,
        operation_id: str,
        *,
        trigger: str,
        config: dict[str, Any] | None = None,
        delivery_id: str | None = None,
    ) -> str:
        """Create a queued run and enqueue it (queued operations) or run it now (inline ones); returns its ID."""
        run, operation = await self._new_run(integration_id, operation_id, trigger, config, delivery_id, enqueue=True)
        if operation.policy.mode == "inline":
            await self.execute(run.id)
        return run.id

    def submit(self, run_id: str, *, delay: float | None = None, time_limit: float | None = None) -> None:
        """Hand a queued run to the queue; a failed enqueue fails the run (never a queued run with no message)."""
        collecting = getattr(self._sending, "messages", None)
        if collecting is not None and delay is None:
            collecting.append((run_id, time_limit, tracing.capture()))  # sent with its batch (``_create_batch``)
            return
        try:
            self.enqueue(run_id, delay, time_limit)
        except Exception as exc:
            self._enqueue_failed(run_id, exc)

    async def run_inline(
        self,
        integration_id: str,
        operation_id: str,
        *,
        trigger: str = "api",
        config: dict[str, Any] | None = None,
        delivery_id: str | None = None,
    ) -> InlineResult:
        """Run an operation in the caller, through the same path and with the same run record as a queued run.

        No retries: a transient failure or a rate limit fails the run at once (the caller decides).
        """
        run, _operation = await self._new_run(integration_id, operation_id, trigger, config, delivery_id, enqueue=False)
        outcome = await self.execute(run.id, inline=True)
        return InlineResult(outcome.result, self.view(run.id))

    def cancel(self, run_id: str) -> RunView:
        """Cancel a queued or running run (a running one stops at its next heartbeat); finished runs are kept."""
        now = utcnow()
        with self.context.db.session() as session:
            session.execute(
                update(Run)
                .where(col(Run.id) == run_id, col(Run.status).in_([RunStatus.queued, RunStatus.running]))
                .values(
                    status=RunStatus.cancelled,
                    finished_at=now,
                    error_code=RunCancelled.code,
                    error_message="the run was cancelled",
                )
            )
        return self.view(run_id)

    def view(self, run_id: str) -> RunView:
        with self.context.db.session() as session:
            run = session.get(Run, run_id)
        if run is None:
            raise NotFoundError(f"no run {run_id}")
        return RunView.of(run)

    # -- the one path ------------------------------------------------------------------------------------------

    async def execute(
        self, run_id: str, *, inline: bool = False, released: asyncio.Future[None] | None = None
    ) -> RunOutcome:
        """Execute one run end to end and record it. Safe to call twice for one run: only one call claims it.

        ``released`` (the queue's actor) is resolved once nothing is left but recording a success: the message's
        worker thread may go on to its next message while the finish batch commits (``engine.queue.worker``)."""
        with (
            log_context(run_id=run_id),  # every log line below carries the run's IDs, scrubbed of its secrets
            tracing.span("tether.run.execute", {"tether.run.id": run_id, "tether.run.inline": inline}) as span,
        ):
            outcome = await self._execute(run_id, inline=inline, released=released)
            if span.is_recording():
                span.set_attribute("tether.run.outcome", outcome.status.value)
                if outcome.skipped:
                    span.set_attribute("tether.run.skipped", True)
                if outcome.retry_in is not None:
                    span.set_attribute("tether.retry", True)
                    span.set_attribute("tether.run.deferred", outcome.deferred)
                if outcome.error_code:
                    tracing.fail(span, outcome.error_code)
            return outcome

    async def _execute(self, run_id: str, *, inline: bool, released: asyncio.Future[None] | None) -> RunOutcome:
        claimed = await self._claims.submit(run_id)
        if claimed is None:
            run = await anyio.to_thread.run_sync(self._get_run, run_id)
            status = RunStatus(run.status) if run is not None else RunStatus.cancelled
            return RunOutcome(run_id, status, skipped=True)
        started = time.perf_counter()
        outcome = await self._execute_claimed(claimed, inline=inline, released=released)
        definition_id = claimed.integration.definition_id if claimed.integration is not None else "unknown"
        metrics.run_ended(definition_id, claimed.run.operation, _outcome_label(outcome), time.perf_counter() - started)
        return outcome

    async def _execute_claimed(
        self, claimed: Claimed, *, inline: bool, released: asyncio.Future[None] | None = None
    ) -> RunOutcome:
        run, loaded, state = claimed.run, claimed.integration, claimed.state
        add_log_ids(integration_id=run.integration_id)
        run_id = run.id
        tracing.annotate(
            tether__integration__id=run.integration_id,
            tether__definition=loaded.definition_id if loaded is not None else None,
            tether__operation=run.operation,
            tether__run__attempt=run.attempts,
            tether__run__trigger=str(run.trigger) if run.trigger else None,
        )
        secrets: list[str] = []
        max_retries = 0
        tracked = self.heartbeats.track(run_id)
        watchdog: progress.Watchdog | None = None
        try:
            if loaded is None:
                raise NotFoundError(f"no integration {run.integration_id}")
            require_connected(loaded)  # disconnected after the run was queued: fail it with the state's code
            definition = self.context.definition(loaded.definition_id)
            operation = definition.operation(run.operation)
            if operation is None:
                raise NotFoundError(f"{definition.id} has no operation {run.operation}")
            max_retries = operation.policy.max_retries
            limit = operation.policy.time_limit.total_seconds()
            watchdog = self._watchdog(tracked.task, operation)
            try:
                async with asyncio.timeout(limit) as deadline:
                    if watchdog is None:
                        outcome = await self._perform(run, loaded, definition, operation, state, secrets)
                    else:
                        with watchdog:
                            outcome = await self._perform(run, loaded, definition, operation, state, secrets)
            except TimeoutError:
                if not deadline.expired():
                    raise
                raise TimeLimitExceeded(f"the operation ran longer than its time limit ({limit:g}s)") from None
            if watchdog is not None and watchdog.fired:
                # The operation swallowed the watchdog's cancellation and returned: it still stalled.
                tracked.task.uncancel()
                raise _no_progress(watchdog)
        except asyncio.CancelledError:
            if tracked.cancelled:
                tracked.task.uncancel()
                if watchdog is not None and watchdog.fired:
                    tracked.task.uncancel()  # both asked for it: take back both requests
                return RunOutcome(run_id, RunStatus.cancelled, error_code=RunCancelled.code)
            if watchdog is None or not watchdog.fired:
                raise  # the caller's cancellation (a shutdown): the reaper recovers the run
            tracked.task.uncancel()
            stalled = functools.partial(
                self._failed, run, _no_progress(watchdog), secrets, inline=inline, max_retries=max_retries
            )
            return await anyio.to_thread.run_sync(stalled)
        except Exception as exc:
            failed = functools.partial(self._failed, run, exc, secrets, inline=inline, max_retries=max_retries)
            return await anyio.to_thread.run_sync(failed)
        finally:
            self.heartbeats.untrack(tracked)
        result = outcome.get("run", outcome.get("ingest"))
        success = Success(
            run.id,
            run.integration_id,
            operation.operation_id(),
            result,
            keeps_state=_keeps_state(operation, outcome),
            cursor=outcome.get("_next_cursor"),
            records=outcome.get("_records"),
            removed=outcome.get("_removed"),
            changes=outcome.get("_changes"),
        )
        if released is not None and not released.done():
            released.set_result(None)  # only the finish is left (see ``execute``)
        if not await self._successes.submit(success):
            return RunOutcome(run_id, RunStatus.cancelled)  # a cancel landed first: kept, cursor not advanced
        return RunOutcome(run_id, RunStatus.succeeded, result=result)

    async def _perform(
        self,
        run: Run,
        integration: Integration,
        definition: Definition,
        operation: type[Operation],
        state: OperationState | None,
        secrets: list[str],
    ) -> Any:
        config = _validate(operation, run.config)
        client = None
        if operation.client is not None:
            client = await self._client(integration, definition, secrets)
        ctx = OperationContext(
            integration_id=integration.id,
            tenant_id=integration.tenant_id,
            config=config,
            client=client,
            operator_config=self.context.operator_config(definition.id),
            user_input=self.context.user_input(integration),
            cursor=state.cursor if state is not None else None,
            last_success_at=_aware(state.last_success_at) if state is not None else None,
            run_id=run.id,
            attempt=run.attempts,
            trigger=run.trigger,
            checkpoint=run.checkpoint,
        )
        instance = operation()
        with self._governed(integration, definition):
            if "ingest" in operation.execution_paths():
                summary, by_schema, removed, changes = await self._ingest(
                    run, integration, definition, operation, instance, ctx
                )
                return {
                    "ingest": summary,
                    "_next_cursor": ctx.next_cursor,
                    "_records": by_schema,
                    "_removed": removed,
                    "_changes": changes,
                }
            result = await instance.run(ctx)
        return {"run": result, "_next_cursor": ctx.next_cursor}

    def _watchdog(self, task: asyncio.Task[Any], operation: type[Operation]) -> progress.Watchdog | None:
        """The run's stall watchdog (``engine.runs.progress``), or ``None`` when its window is 0 (off)."""
        window = operation.policy.stall_window
        seconds = self.options.stall_after if window is None else window.total_seconds()
        return progress.Watchdog(task, seconds) if seconds > 0 else None

    def _governed(self, integration: Integration, definition: Definition) -> AbstractContextManager[Scope]:
        """The budget this run's provider calls are charged to (``engine.governor``): the definition's app, or its
        external account or tenant where the provider counts that way, shared fairly between tenants."""
        limit = definition.rate_limit
        account = (integration.account or {}).get("account_id")
        key = BucketKey.for_integration(definition.id, limit, tenant=integration.tenant_id, account=account)
        return governed(
            self.context.governor,
            key,
            limit,
            tenant=integration.tenant_id,
            max_wait=self.context.settings.governor_max_wait_seconds,
        )

    async def _client(self, integration: Integration, definition: Definition, secrets: list[str]) -> Any:
        name = (integration.provider_data or {}).get("connection", "")
        connection = definition.connection(name)
        if connection is None:
            raise NotFoundError(f"integration {integration.id} has no active connection")
        if isinstance(connection.auth, OAuth2):
            await self.custody.get_access_token(integration.id)  # refreshes through the Keystore if due
            stored = self.context.keystore.require(integration.id, connection.auth.slot)
        else:
            stored = self.context.keystore.require(integration.id, connection.credential)
        secrets.extend(_secret_values(stored.slot))
        return self.context.build_client(integration, connection, stored)

    async def _ingest(
        self,
        run: Run,
        integration: Integration,
        definition: Definition,
        operation: type[Operation],
        instance: Operation,
        ctx: OperationContext,
    ) -> tuple[dict[str, int], dict[str, int], dict[str, int], tuple[int, int] | None]:
        """Ingest the operation's payloads; returns the totals, the records persisted and removed (provider deletes,
        complete snapshots) per schema and the range ``(after, until)`` of the change feed that holds this run's
        changes (``None`` when it changed nothing)."""
        from ingest.changes import last_seq
        from ingest.pipeline import IngestContext, compile_integration_filter

        pipeline = self.pipeline()
        ingest_ctx = IngestContext(
            tenant_id=integration.tenant_id,
            integration_id=integration.id,
            definition_id=definition.id,
            emits=operation.emits,
            integration_filter=compile_integration_filter(integration.filter_expr),
            run_id=run.id,
            source="operation",
            origin=operation.operation_id(),
            snapshot=frozenset(operation.complete_snapshots),
        )
        totals = {"received": 0, "persisted": 0, "filtered": 0, "rejected": 0}
        by_schema: dict[str, int] = {}
        removed_by_schema: dict[str, int] = {}
        batch: list[Payload] = []
        seen: dict[str, set[Any]] = {}
        rejected: set[str] = set()
        db = self.context.db

        def feed_head() -> int:
            with db.engine.connect() as connection:
                return last_seq(connection, integration.tenant_id)

        before = await anyio.to_thread.run_sync(feed_head)

        async def flush() -> None:
            page = list(batch)
            batch.clear()
            with tracing.span("tether.ingest.batch", {"tether.ingest.records": len(page)}) as span:
                result = await anyio.to_thread.run_sync(
                    lambda: pipeline.process(ingest_ctx, page, start_position=totals["received"])
                )
                if span.is_recording():
                    span.set_attributes(
                        {
                            "tether.ingest.persisted": result.persisted,
                            "tether.ingest.filtered": result.filtered,
                            "tether.ingest.rejected": result.rejected,
                            "tether.ingest.removed": result.removed,
                        }
                    )
            for key in ("received", "persisted", "filtered", "rejected"):
                totals[key] += getattr(result, key)
            metrics.ingested(definition.id, {key: getattr(result, key) for key in metrics.INGEST_OUTCOMES})
            for schema, keys in result.seen.items():
                seen.setdefault(schema, set()).update(keys)
            rejected.update(reject.schema for reject in result.rejects)
            for schema, count in result.persisted_by_schema.items():
                by_schema[schema] = by_schema.get(schema, 0) + count
            if result.removed:  # only a run that removed something says so (the summary's keys stay as they were)
                totals["removed"] = totals.get("removed", 0) + result.removed
            for schema, count in result.removed_by_schema.items():
                removed_by_schema[schema] = removed_by_schema.get(schema, 0) + count
            progress.note()  # records ingested

        async for payload in instance.ingest(ctx):
            progress.note()  # a payload or a checkpoint is progress (a float store: cheap per payload)
            if isinstance(payload, Checkpoint):
                # Everything yielded before the checkpoint is persisted first, so a resumed attempt never skips a
                # page whose records were still in the batch.
                if batch:
                    await flush()
                await anyio.to_thread.run_sync(self._save_checkpoint, run.id, payload.state)
                continue
            batch.append(payload)
            if len(batch) >= self.options.ingest_batch:
                await flush()
        if batch:
            await flush()
        # A resumed run saw only the pages after its checkpoint: removing what it did not see would be wrong.
        if ingest_ctx.snapshot and ctx.checkpoint is None:
            removed = await anyio.to_thread.run_sync(
                lambda: remove_unconfirmed(pipeline, self.context.db, ingest_ctx, run, seen, rejected)
            )
            totals["removed"] = totals.get("removed", 0) + sum(removed.values())
            for schema, count in removed.items():
                if count:
                    removed_by_schema[schema] = removed_by_schema.get(schema, 0) + count
        after = await anyio.to_thread.run_sync(feed_head)
        return totals, by_schema, removed_by_schema, (before, after) if after > before else None

    def pipeline(self) -> Any:
        if self._pipeline is None:
            from ingest.pipeline import IngestPipeline

            self._pipeline = IngestPipeline(self.context.registry, self.context.db)
        return self._pipeline

    # -- recovery ----------------------------------------------------------------------------------------------

    def resubmit_queued(self) -> list[str]:
        """Send a message again for every ``queued`` run; returns their IDs.

        For the embedded worker at start-up: its broker keeps messages in memory, so the queued runs of a server
        that stopped (or crashed) have no message any more. A run that still has one is harmless to send twice:
        only one claim succeeds. Deferred runs go out at once and are deferred again if the provider still says so.
        """
        with self.context.db.engine.connect() as connection:
            queued = connection.execute(
                sa_select(Run.id, Integration.definition_id, Run.operation)  # type: ignore[call-overload]
                .join(Integration, col(Integration.id) == col(Run.integration_id))
                .where(col(Run.status) == RunStatus.queued)
                .order_by(col(Run.queued_at))
            ).all()
        sent: list[str] = []
        for run_id, definition_id, operation_id in queued:
            try:
                operation = self.context.definition(definition_id).operation(operation_id)
            except TetherError:
                operation = None
            if operation is None:
                self._finish(
                    run_id,
                    RunStatus.failed,
                    error=("operation_unknown", "the run's operation is no longer declared"),
                    only_from="queued",
                )
                continue
            try:
                self.submit(run_id, time_limit=operation.policy.time_limit.total_seconds())
            except TetherError:
                continue  # submit failed the run with enqueue_failed
            sent.append(run_id)
        if sent:
            log.info("re-sent %d queued runs", len(sent))
        return sent

    # -- reaper ------------------------------------------------------------------------------------------------

    def reap_stale(self, *, stale_after: float | None = None) -> list[RunOutcome]:
        """Runs left ``running`` by a dead worker (heartbeat older than ``stale_after``): back to ``queued`` and
        re-enqueued while retries remain, else ``failed`` with ``worker_lost``. Safe with several reapers: each
        transition is a conditional UPDATE on the stale heartbeat, so one of them wins."""
        cutoff = utcnow() - timedelta(seconds=self.options.stale_after if stale_after is None else stale_after)
        outcomes: list[RunOutcome] = []
        with self.context.db.session() as session:
            stale = session.exec(
                select(Run).where(
                    col(Run.status) == RunStatus.running,
                    (col(Run.heartbeat_at) < cutoff)
                    | (col(Run.heartbeat_at).is_(None) & (col(Run.started_at) < cutoff)),
                )
            ).all()
        for run in stale:
            max_retries = self._max_retries(run)
            retry = max_retries is not None and run.attempts <= max_retries
            message = "the worker running this run stopped responding"
            values: dict[str, Any] = {"error_code": WorkerLost.code, "error_message": message}
            if retry:
                values["status"] = RunStatus.queued
            else:
                # Out of retries, the run did not fail: it stopped where its worker died (issue 23: ``stalled``).
                values.update(status=RunStatus.stalled, finished_at=utcnow())
                values["error_message"] = message + "; no retries left"
            with self.context.db.session() as session:
                changed = session.execute(
                    update(Run)
                    .where(
                        col(Run.id) == run.id,
                        col(Run.status) == RunStatus.running,
                        col(Run.heartbeat_at) == run.heartbeat_at
                        if run.heartbeat_at is not None
                        else col(Run.heartbeat_at).is_(None),
                    )
                    .values(**values)
                ).rowcount
                if changed and not retry:
                    lost = _failure_event(run, WorkerLost.code, values["error_message"], RunStatus.stalled)
                    emit(session.connection(), [lost])
            if not changed:
                continue
            if retry:
                delay = self.backoff(run.attempts)
                try:
                    self.submit(run.id, delay=delay)
                except TetherError:
                    continue
                outcomes.append(RunOutcome(run.id, RunStatus.queued, error_code=WorkerLost.code, retry_in=delay))
            else:
                outcomes.append(RunOutcome(run.id, RunStatus.stalled, error_code=WorkerLost.code))
            self._count_reaped(run, outcomes[-1])
            log.warning("run %s recovered from a dead worker: %s", run.id, values["status"])
        return outcomes

    def _count_reaped(self, run: Run, outcome: RunOutcome) -> None:
        """The run metric for a run the reaper moved (its executing worker, dead, never counted it): duration from
        its start to now."""
        try:
            with self.context.db.session() as session:
                integration = session.get(Integration, run.integration_id)
        except Exception as exc:  # a metric is not worth failing the sweep for; the run has moved already
            log.warning("reaped run %s not counted: %s", run.id, type(exc).__name__)
            return
        started = _aware(run.started_at)
        seconds = (datetime.now(UTC) - started).total_seconds() if started is not None else 0.0
        definition_id = integration.definition_id if integration is not None else "unknown"
        metrics.run_ended(definition_id, run.operation, _outcome_label(outcome), max(0.0, seconds))

    def _max_retries(self, run: Run) -> int | None:
        try:
            with self.context.db.session() as session:
                integration = session.get(Integration, run.integration_id)
            if integration is None:
                return None
            operation = self.context.registry.get(integration.definition_id).operation(run.operation)
            return operation.policy.max_retries if operation is not None else None
        except TetherError:
            return None

    def backoff(self, attempts: int) -> float:
        """Exponential backoff with jitter for the retry after ``attempts`` attempts."""
        base = self.options.retry_min_backoff * (2 ** max(0, attempts - 1))
        return min(self.options.retry_max_backoff, base) * random.uniform(0.8, 1.2)

    # -- database steps ----------------------------------------------------------------------------------------

    async def _new_run(
        self,
        integration_id: str,
        operation_id: str,
        trigger: str,
        config: dict[str, Any] | None,
        delivery_id: str | None,
        *,
        enqueue: bool,
    ) -> tuple[Run, type[Operation]]:
        """Create a queued run, batched with concurrent dispatches (one INSERT for all of them); with ``enqueue``,
        a queued operation's message is sent from the same worker thread right after the INSERT commits, so the
        event loop never waits on the broker."""
        chosen: list[type[Operation]] = []
        caller = tracing.capture()  # ``after`` runs on the batch's thread: the message belongs to the caller's trace

        def after(run: Run) -> None:
            policy = chosen[0].policy
            if enqueue and policy.mode != "inline":
                with tracing.attached(caller):
                    self.submit(run.id, time_limit=policy.time_limit.total_seconds())

        def build(integration: Integration) -> Run:
            definition = self.context.definition(integration.definition_id)
            operation = definition.operation(operation_id)
            if operation is None:
                raise NotFoundError(f"{definition.id} has no operation {operation_id}")
            if trigger not in TRIGGERS:
                raise InvalidTrigger(f"unknown trigger {trigger!r}")
            require_connected(integration)
            if operation.policy.access == "write":
                self._require_write_tier(integration, definition)
            if operation.policy.product is not None:
                self._require_product(integration, definition, operation.policy.product)
            chosen.append(operation)
            return new_run(
                integration_id=integration.id,
                tenant_id=integration.tenant_id,
                operation=operation.operation_id(),
                trigger=trigger,
                config=_validate(operation, config or {}).model_dump(mode="json"),
                delivery_id=delivery_id,
            )

        run = await self._creates.submit(NewRun(integration_id, build, after))
        return run, chosen[0]

    def _granted(self, integration: Integration, definition: Definition) -> tuple[Any, tuple[str, ...]] | None:
        """The active connection and the scopes its stored grant holds (stored in clear beside the encrypted
        credential, so no decryption), or ``None`` without an active connection."""
        return granted_scopes(self.context.db, integration, definition)

    def _require_product(self, integration: Integration, definition: Definition, product: str) -> None:
        """``upgrade_required`` (naming the product) unless the stored grant holds the product's scopes."""
        found = self._granted(integration, definition)
        if found is None:
            return  # no active connection: ``require_connected`` already refused anything that is not connected
        connection, granted = found
        missing = missing_product_scopes(connection.auth, product, granted)
        if missing:
            base = self.context.settings.public_url.rstrip("/")
            raise UpgradeRequired(
                f"this operation needs the {product} product and the grant does not cover it; upgrade to it first",
                upgrade_url=f"{base}/v1/integrations/{integration.id}/upgrade",
                missing_scopes=missing,
                product=product,
            )

    def _require_write_tier(self, integration: Integration, definition: Definition) -> None:
        """``upgrade_required`` unless the stored grant holds the connection's write scopes. Only write operations
        pay this read."""
        found = self._granted(integration, definition)
        if found is None:
            return  # no active connection: ``require_connected`` already refused anything that is not connected
        connection, granted = found
        missing = missing_write_scopes(connection.auth, granted)
        if missing:
            base = self.context.settings.public_url.rstrip("/")
            raise UpgradeRequired(
                "this operation changes provider data and the grant has read access only; upgrade the access first",
                upgrade_url=f"{base}/v1/integrations/{integration.id}/upgrade",
                missing_scopes=missing,
            )

    def _create_batch(self, items: list[NewRun]) -> list[Run | BaseException]:
        answers = create_runs(self.context.db, items)
        # With ``enqueue_many``, the ``submit`` calls of the items' ``after`` only collect their messages, and the
        # batch's messages go to the broker together once every item is handled (one round trip on Redis).
        batched = self.enqueue_many is not None and self.enqueue is self._batched_enqueue
        collected: list[tuple[str, float | None, Any]] | None = [] if batched else None
        self._sending.messages = collected
        sent_by: dict[str, int] = {}
        try:
            for index, (item, answer) in enumerate(zip(items, answers, strict=True)):
                if item.after is not None and isinstance(answer, Run):
                    try:
                        item.after(answer)
                    except Exception as exc:  # this item's own failure (``submit`` failed the run and says why)
                        answers[index] = exc
                    sent_by[answer.id] = index
        finally:
            self._sending.messages = None
        if collected:
            assert self.enqueue_many is not None
            try:
                errors = list(self.enqueue_many(collected))
            except Exception as exc:  # the broker refused the whole batch
                errors = [exc] * len(collected)
            for (run_id, _limit, _context), error in zip(collected, errors, strict=True):
                if error is None:
                    continue
                try:
                    self._enqueue_failed(run_id, error)
                except TetherError as failed:
                    answers[sent_by[run_id]] = failed
        return answers

    def _enqueue_failed(self, run_id: str, exc: BaseException) -> None:
        """A queued run whose message could not be sent: failed, never left queued without a message."""
        log.error("enqueue of run %s failed: %s", run_id, type(exc).__name__)
        self._finish(
            run_id, RunStatus.failed, error=("enqueue_failed", "the run could not be queued"), only_from="queued"
        )
        raise TetherError("the run could not be queued", code="enqueue_failed", status=503) from None

    def _save_checkpoint(self, run_id: str, state: Any) -> None:
        """Store where the run's next attempt resumes; a run no longer ``running`` (cancelled) keeps its own."""
        with self.context.db.session() as session:
            session.execute(
                update(Run).where(col(Run.id) == run_id, col(Run.status) == RunStatus.running).values(checkpoint=state)
            )

    def _get_run(self, run_id: str) -> Run | None:
        with self.context.db.session() as session:
            return session.get(Run, run_id)

    def _failed(
        self, run: Run, exc: Exception, secrets: Sequence[str], *, inline: bool, max_retries: int
    ) -> RunOutcome:
        code, message = describe_error(exc, secrets)
        delay = rate_limit_delay(exc)
        retry_in: float | None = None
        if not inline and delay is not None and run.attempts <= max_retries + RATE_LIMIT_ALLOWANCE:
            retry_in = min(delay, self.options.max_defer)
        elif not inline and delay is None and is_transient(exc) and run.attempts <= max_retries:
            retry_in = self.backoff(run.attempts)
        if retry_in is not None:
            status = RunStatus.queued
            values: dict[str, Any] = {"status": status, "error_code": code, "error_message": message}
        else:
            # A run stopped short (a stall error: no progress, a provider's broken pagination) is ``stalled``.
            status = RunStatus.stalled if getattr(exc, "stalls", False) else RunStatus.failed
            values = {"status": status, "error_code": code, "error_message": message, "finished_at": utcnow()}
        with self.context.db.session() as session:
            changed = session.execute(
                update(Run).where(col(Run.id) == run.id, col(Run.status) == RunStatus.running).values(**values)
            ).rowcount
            if changed and status != RunStatus.queued:
                emit(session.connection(), [_failure_event(run, code, message, status)])
        if not changed:
            return RunOutcome(run.id, RunStatus.cancelled, error_code=RunCancelled.code)
        if retry_in is None:
            log.info("run %s %s: %s", run.id, status.value, code)
        return RunOutcome(
            run.id,
            status,
            error_code=code,
            error_message=message,
            retry_in=retry_in,
            deferred=retry_in is not None and delay is not None,
        )

    def _finish(self, run_id: str, status: RunStatus, *, error: tuple[str, str], only_from: str) -> None:
        with self.context.db.session() as session:
            moved = session.execute(
                update(Run)
                .where(col(Run.id) == run_id, col(Run.status) == only_from)
                .values(status=status, error_code=error[0], error_message=error[1], finished_at=utcnow())
                .returning(col(Run.id), col(Run.tenant_id), col(Run.integration_id), col(Run.operation))
            ).first()
            if moved is not None and status == RunStatus.failed:
                failed = run_event(moved.tenant_id, run_id, moved.integration_id, moved.operation, status, error=error)
                emit(session.connection(), [failed])


# -- helpers ----------------------------------------------------------------------------------------------------


def _outcome_label(outcome: RunOutcome) -> str:
    """The run metric's outcome: the status, with a run sent back to the queue told apart by why."""
    if outcome.retry_in is not None:
        return "deferred" if outcome.deferred else "retried"
    return str(outcome.status)


def _failure_event(run: Run, code: str, message: str, status: str = RunStatus.failed) -> NewEvent:
    """``run.failed``, or ``run.stalled`` for a run that ended ``stalled``."""
    return run_event(run.tenant_id, run.id, run.integration_id, run.operation, str(status), error=(code, message))


def _no_progress(watchdog: progress.Watchdog) -> NoProgress:
    return NoProgress(f"the run made no progress for {watchdog.window:g}s (its stall window)")


def _keeps_state(operation: type[Operation], outcome: dict[str, Any]) -> bool:
    """Whether a success is worth an ``operation_state`` write: ingest, incremental, scheduled or reconciled
    operations use it (cursor, last success); a plain raw-result call does not."""
    policy = operation.policy
    return (
        outcome.get("_next_cursor") is not None
        or "ingest" in outcome
        or policy.schedule is not None
        or policy.reconcile
    )


def granted_scopes(db: Any, integration: Integration, definition: Definition) -> tuple[Any, tuple[str, ...]] | None:
    """The integration's active connection and the scopes its stored grant holds (kept in clear beside the
    encrypted credential, so nothing is decrypted), or ``None`` when no connection is active."""
    connection = definition.connection((integration.provider_data or {}).get("connection", "") or "")
    if connection is None:
        return None
    with db.session() as session:
        granted = session.exec(
            select(Credential.scopes).where(
                Credential.integration_id == integration.id, Credential.slot == connection.credential.slot_id()
            )
        ).first()
    return connection, tuple(granted or ())


def ensure_state(session: Session, integration_id: str, operation_id: str) -> OperationState:
    """The operation's state row, created when missing (a concurrent creator wins the unique constraint)."""
    query = select(OperationState).where(
        OperationState.integration_id == integration_id, OperationState.operation == operation_id
    )
    state = session.exec(query).first()
    if state is not None:
        return state
    try:
        with session.begin_nested():
            state = OperationState(integration_id=integration_id, operation=operation_id)
            session.add(state)
            session.flush()
        return state
    except IntegrityError:
        found = session.exec(query).first()
        assert found is not None
        return found


def describe_error(exc: BaseException, secrets: Sequence[str] = ()) -> tuple[str, str]:
    """A stable code and a message safe to store and show: Tether errors keep their own message (scrubbed of
    credential values); anything else is named by type only, since its text may hold anything."""
    if isinstance(exc, TetherError):
        code, message = exc.code, exc.message
    elif isinstance(exc, TRANSPORT_ERRORS):
        code, message = "network_error", f"the provider could not be reached ({type(exc).__name__})"
    else:
        code, message = UnexpectedError.code, f"the operation raised {type(exc).__name__}"
    for secret in secrets:
        if secret and len(secret) >= 4:
            message = message.replace(secret, "[redacted]")
    return code[:100], message[:1000]


def _secret_values(slot: Any) -> list[str]:
    try:
        values = slot.reveal()
    except Exception:
        return []
    return [leaf for leaf in leaves(values) if isinstance(leaf, str)]


def _validate(operation: type[Operation], config: dict[str, Any] | None) -> BaseModel:
    unknown = _unknown_fields(operation.config, config or {})
    if unknown:
        raise ValidationFailed(f"invalid config for {operation.operation_id()}: unknown field {unknown[0]}")
    try:
        return operation.config.model_validate(config or {})
    except ValidationError as exc:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())) or "config"
        raise ValidationFailed(
            f"invalid config for {operation.operation_id()} at {where}: {first.get('msg', '')}"
        ) from None


def _unknown_fields(model: type[BaseModel], config: dict[str, Any]) -> list[str]:
    """Top-level keys the config model does not declare (by name or alias), unless it accepts extra fields: a typo
    such as ``lookback_hourz`` would otherwise be dropped and the run would use the default without a word."""
    if not config or not isinstance(config, dict) or model.model_config.get("extra") == "allow":
        return []
    known = _known_fields(model)
    return sorted(str(key) for key in config if key not in known)


@functools.cache
def _known_fields(model: type[BaseModel]) -> frozenset[str]:
    """The names and aliases a config model declares, once per model (every run's config is checked)."""
    known: set[str] = set()
    for name, info in model.model_fields.items():
        known.add(name)
        for alias in (info.alias, info.validation_alias):
            if isinstance(alias, str):
                known.add(alias)
            elif alias is not None:
                known.update(str(c) for c in getattr(alias, "choices", ()) if isinstance(c, str))
    return frozenset(known)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def monotonic_ms() -> float:
    return time.monotonic() * 1000
