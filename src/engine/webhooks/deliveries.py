"""Webhook deliveries: recording (an outbox), processing and the recovery sweep. Endpoint rows:
``engine.webhooks.endpoints``.

- ``record_delivery`` runs after verification: one ``INSERT … ON CONFLICT DO NOTHING`` on (endpoint, delivery ID)
  writes the delivery and its processing intent (status ``received``) together. A duplicate inserts nothing, so
  concurrent duplicates cannot both be processed. Without a provider delivery ID, a content hash of the body within
  a time bucket stands in.
- ``process_deliveries`` (a queue message's row IDs; ``process_delivery`` for one) claims ``received`` rows in chunks
  (a lease, fenced by ``attempts``; ``engine.webhooks.deliverystore``: one statement per chunk), resolves each one's
  event type to an event class (none: ``unrouted``, kept), runs the handler (payloads → ingest, counted on a run
  with trigger ``webhook``; ``ctx.dispatch`` → the execution layer) and finishes the chunk's rows together as
  ``processed`` or ``failed`` with a reason.
- ``redeliver_pending`` is the sweep that picks up deliveries whose processing never finished (a worker died).

While a row is ``received``, ``processed_at`` holds the time processing was claimed (the lease); once the row is
final it is the time processing finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import anyio.to_thread
from sqlalchemy import Connection, Engine, or_, update
from sqlalchemy.exc import DBAPIError
from sqlmodel import col, select

from engine.authoring.operations import Operation, Payload
from engine.authoring.webhooks import CelValue, EventContext, Header, JsonField, Locator, Webhook, WebhookEvent
from engine.errors import TetherError
from engine.events.outbox import records_changed
from engine.kit.inputs import storable
from engine.observability import metrics, tracing
from engine.observability.logs import add_log_ids, log_context
from engine.services import Services
from engine.store.database import Database
from engine.store.tables import (
    DeliveryStatus,
    IntegrationStatus,
    Run,
    RunStatus,
    WebhookDelivery,
    new_id,
    utcnow,
)
from engine.webhooks.deliverystore import (
    Claimed,
    EndpointRef,
    Finish,
    IntegrationRef,
    claim_deliveries,
    finish_deliveries,
    renew_leases,
)
from engine.webhooks.subscriptions import EndpointSubscriptions
from engine.webhooks.targets import Target, webhook_class
from engine.webhooks.verification import lower_headers
from ingest.pipeline import IngestContext, IngestPipeline, compile_integration_filter

log = logging.getLogger("tether.webhooks")

#: Deliveries without a provider delivery ID are de-duplicated by content within windows of this length.
CONTENT_HASH_WINDOW = timedelta(minutes=5)
#: Processing attempts before a delivery is failed for good.
MAX_ATTEMPTS = 5
#: Payloads handed to ingest per transaction.
INGEST_PAGE = 500
#: Headers never stored with a delivery.
_UNSTORED_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})

Dispatcher = Callable[[Services, str, str, dict[str, Any]], Awaitable[str]]


# -- receiving -------------------------------------------------------------------------------------------------


def parse_body(body: bytes, headers: Mapping[str, str]) -> Any:
    """JSON, or a form (Slack slash commands; a form's ``payload`` field holding JSON is decoded); else ``None``."""
    if "application/x-www-form-urlencoded" in headers.get("content-type", ""):
        form: dict[str, Any] = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        if isinstance(form.get("payload"), str):
            with contextlib.suppress(ValueError):
                form["payload"] = json.loads(form["payload"])
        return form
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def json_path(payload: Any, path: str) -> Any:
    current = payload
    for part in path.split("."):
        if isinstance(current, Mapping):
            current = current.get(part)
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    return current


def locate(
    runtime: Services,
    definition_id: str,
    webhook: type[Webhook],
    attr: str,
    locator: Locator | None,
    payload: Any,
    headers: Mapping[str, str],
) -> str | None:
    """A header, JSON-path or CEL value of a delivery as text (``None``: absent, empty or not a scalar)."""
    if locator is None:
        return None
    if isinstance(locator, Header):
        value: Any = headers.get(locator.name.lower())
    elif isinstance(locator, JsonField):
        value = json_path(payload, locator.path)
    elif isinstance(locator, CelValue):
        expression = runtime.registry.expression(definition_id, f"{webhook.name}.{attr}")
        try:
            value = expression.evaluate({"payload": payload, "headers": dict(headers)})
        except TetherError:
            return None
    else:
        return None
    if value is None or isinstance(value, dict | list) or value == "":
        return None
    return str(value).lower() if isinstance(value, bool) else str(value)


def delivery_key(
    runtime: Services,
    target: Target,
    payload: Any,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime | None = None,
) -> str:
    """The idempotency key: the provider's delivery ID, else a content hash within a time bucket."""
    webhook = target.webhook
    value = locate(runtime, target.definition_id, webhook, "delivery_id", webhook.delivery_id, payload, headers)
    if value is None:
        value = webhook.verifier.delivery_id(headers)
    if value is not None and len(value) <= 200 and storable(value):
        return value
    if value is not None:  # too long for the column, or NUL / a lone surrogate the database cannot hold
        return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    at = now or utcnow()
    bucket = int(at.timestamp() // CONTENT_HASH_WINDOW.total_seconds())
    return f"body:{bucket}:{hashlib.sha256(body).hexdigest()}"


@dataclass(frozen=True)
class Recorded:
    row_id: str
    delivery_id: str
    duplicate: bool


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A verified delivery about to be recorded (headers already stripped of the unstored ones)."""

    endpoint_id: str
    integration_id: str
    delivery_id: str
    body: bytes
    headers: Mapping[str, str]
    received_at: datetime
    row_id: str = field(default_factory=new_id)

    @classmethod
    def of(cls, target: Target, delivery_id: str, body: bytes, headers: Mapping[str, str]) -> NewDelivery:
        """From a verified request; ``headers`` with lower-case names (as the endpoint has them)."""
        stored = {k: v for k, v in headers.items() if k not in _UNSTORED_HEADERS}
        return cls(target.endpoint_id, target.integration_id, delivery_id, body, stored, utcnow())


#: Columns bound per row of the INSERT, in order; the others are the constants of a new ``received`` row.
_BOUND = ("id", "endpoint_id", "integration_id", "delivery_id", "body", "headers", "received_at")
_COLUMNS = (
    "id, endpoint_id, integration_id, delivery_id, event_type, status, body, headers, error_code, error_message, "
    "attempts, received_at, processed_at"
)


class _DeliveryInsert:
    """The multi-row ``INSERT … ON CONFLICT DO NOTHING RETURNING id`` of ``record_deliveries`` for one engine.

    Built once per engine and batch size: the SQL text (positional placeholders, so nothing is compiled per call)
    and the columns' own bind processors (SQLAlchemy's, so rows read back exactly as ORM-written ones). On
    PostgreSQL it runs on a psycopg ``RawCursor`` (``$n`` placeholders, binary parameters): psycopg neither
    re-parses a long statement for ``%s`` on every call nor dumps parameters as text, and it prepares the
    statement server-side after a few runs. SQLAlchemy's ``before_cursor_execute`` hooks do not see it.
    """

    def __init__(self, engine: Engine) -> None:
        dialect = engine.dialect
        self.postgres = dialect.name == "postgresql"
        if not self.postgres and dialect.name != "sqlite":
            raise NotImplementedError(f"recording deliveries on {dialect.name}")
        table = WebhookDelivery.__table__  # type: ignore[attr-defined]
        processors = [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in _BOUND]
        if self.postgres:
            # The headers as JSON text with a cast in the statement: one ``json.dumps``, no adapter object per row.
            processors[_BOUND.index("headers")] = json.dumps
        #: (position, processor) of the columns that need one.
        self.convert = [(i, p) for i, p in enumerate(processors) if p is not None]
        self._sql: dict[int, str] = {}

    def sql(self, rows: int) -> str:
        found = self._sql.get(rows)
        if found is None:
            groups = []
            for row in range(rows):
                if self.postgres:
                    b = [f"${row * len(_BOUND) + i + 1}" for i in range(len(_BOUND))]
                    b[5] += "::json"
                else:
                    b = ["?"] * len(_BOUND)
                groups.append(
                    f"({b[0]}, {b[1]}, {b[2]}, {b[3]}, '', 'received', {b[4]}, {b[5]}, '', '', 0, {b[6]}, NULL)"
                )
            found = self._sql[rows] = (
                f"INSERT INTO webhook_delivery ({_COLUMNS}) VALUES {', '.join(groups)} "
                "ON CONFLICT (endpoint_id, delivery_id) DO NOTHING RETURNING id"
            )
        return found

    def params(self, items: Sequence[NewDelivery]) -> list[Any]:
        out: list[Any] = []
        convert = self.convert
        for item in items:
            row = [
                item.row_id,
                item.endpoint_id,
                item.integration_id,
                item.delivery_id,
                item.body,
                item.headers,
                item.received_at,
            ]
            for i, process in convert:
                row[i] = process(row[i])
            out += row
        return out

    def run(self, connection: Connection, items: Sequence[NewDelivery]) -> set[str]:
        """Execute in ``connection``'s transaction; the row IDs actually inserted."""
        sql, params = self.sql(len(items)), self.params(items)
        if not self.postgres:
            return {row[0] for row in connection.exec_driver_sql(sql, tuple(params))}
        import psycopg

        try:
            with psycopg.RawCursor(connection.connection.driver_connection) as cursor:
                cursor.execute(sql, params, binary=True)
                return {row[0] for row in cursor.fetchall()}
        except psycopg.Error as exc:
            # What SQLAlchemy would do for its own cursor: a lost connection is invalidated (not pooled again),
            # and the error is raised as SQLAlchemy's (parameters hidden: they hold delivery bodies).
            disconnect = connection.dialect.is_disconnect(exc, connection.connection.dbapi_connection, None)
            if disconnect:
                connection.invalidate(exc)
            raise DBAPIError.instance(
                sql, None, exc, psycopg.Error, hide_parameters=True, connection_invalidated=disconnect
            ) from exc

    async def arun(self, connection: Any, items: Sequence[NewDelivery]) -> set[str]:
        """Execute on an autocommit ``psycopg.AsyncConnection`` (PostgreSQL only): the statement is its own
        transaction, committed when this returns. The row IDs actually inserted."""
        import psycopg

        sql = self.sql(len(items))
        try:
            async with psycopg.AsyncRawCursor(connection) as cursor:
                await cursor.execute(sql, self.params(items), binary=True)
                return {row[0] for row in await cursor.fetchall()}
        except psycopg.Error as exc:  # raised as the thread path raises it (SQLAlchemy's, parameters hidden)
            raise DBAPIError.instance(
                sql, None, exc, psycopg.Error, hide_parameters=True, connection_invalidated=connection.broken
            ) from exc


_inserts: weakref.WeakKeyDictionary[Engine, _DeliveryInsert] = weakref.WeakKeyDictionary()


def record_deliveries(db: Database, items: Sequence[NewDelivery]) -> list[Recorded]:
    """Record deliveries with status ``received`` (the processing intent) in ONE multi-row ``INSERT … ON CONFLICT
    (endpoint_id, delivery_id) DO NOTHING RETURNING id`` and one transaction: the group commit of the endpoint.

    A delivery ID already recorded for the endpoint, or repeated within ``items``, inserts nothing and reports
    ``duplicate``: the unique constraint decides, so of any number of concurrent duplicates exactly one is
    recorded (the first in ``items`` when they share a batch). When this raises, nothing of the batch was written
    (the caller may retry the items one by one: ``engine.store.batching``).
    """
    if not items:
        return []
    insert = _inserts.get(db.engine)
    if insert is None:
        insert = _inserts[db.engine] = _DeliveryInsert(db.engine)
    with db.engine.begin() as connection:
        inserted = insert.run(connection, items)
    return [Recorded(i.row_id, i.delivery_id, duplicate=i.row_id not in inserted) for i in items]


def record_delivery(
    db: Database, target: Target, delivery_id: str, body: bytes, headers: Mapping[str, str]
) -> Recorded:
    """Record one delivery on its own (a batch of one of ``record_deliveries``); ``duplicate`` when the endpoint
    already has this delivery ID (race-safe: the unique constraint decides)."""
    [recorded] = record_deliveries(db, [NewDelivery.of(target, delivery_id, body, lower_headers(headers))])
    return recorded


AfterCommit = Callable[[list[str]], None]


class DeliveryRecorder:
    """Group commit for one database: concurrent ``record`` calls share one batch (``engine.store.batching.Coalescer``:
    a lone call goes through at once, batches form only under load).

    On PostgreSQL a batch is one autocommit ``INSERT … ON CONFLICT DO NOTHING RETURNING id`` on the event loop's own
    connection (``engine.store.loopdb``): one round trip, no thread. Elsewhere (SQLite) it is ``record_deliveries`` in a
    worker thread.

    ``record`` returns only after the batch holding the delivery has committed, so an acknowledgement sent after
    it is durable. ``after_commit`` (when given) is called with the row IDs the batch inserted, after the commit:
    the endpoint's batched hand-off to the queue. It must not block (it runs on the event loop on PostgreSQL). Its
    failure is logged and swallowed (the deliveries are recorded; they stay ``received`` and the sweep,
    ``redeliver_pending``, processes them).
    """

    def __init__(self, db: Database, *, after_commit: AfterCommit | None = None, max_batch: int = 64) -> None:
        from engine.store.batching import Coalescer

        self.db = db
        self.after_commit = after_commit
        #: Batches committed and the deliveries in them (the mean batch size shows the group commit at work).
        self.batches = 0
        self.items = 0
        #: Row ID → the recording request's trace context, while it waits for its batch (tracing on only).
        self._traces: dict[str, Any] = {}
        self._coalescer: Coalescer[NewDelivery, Recorded]
        if db.dialect == "postgresql":
            self._insert = _DeliveryInsert(db.engine)
            self._coalescer = Coalescer("record-deliveries", self._record_on_loop, max_batch=max_batch)
        else:
            self._coalescer = Coalescer("record-deliveries", self._record, max_batch=max_batch)

    def _record(self, items: list[NewDelivery]) -> list[Recorded]:
        return self._committed(record_deliveries(self.db, items))

    async def _record_on_loop(self, items: list[NewDelivery]) -> list[Recorded]:
        try:
            inserted = await self._insert_on_loop(items)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            # The loop's connection was lost (the server restarted, an idle connection was cut): once more on a new
            # one. Safe to repeat: if the first attempt did commit, its rows now answer ``duplicate`` (recorded and
            # ``received``, so the sweep hands them off) instead of being written twice.
            log.info("recording connection lost (%s); retrying the batch once", type(exc.orig).__name__)
            inserted = await self._insert_on_loop(items)
        return self._committed([Recorded(i.row_id, i.delivery_id, duplicate=i.row_id not in inserted) for i in items])

    async def _insert_on_loop(self, items: list[NewDelivery]) -> set[str]:
        async with self.db.loop_connection.connection() as connection:
            return await self._insert.arun(connection, items)

    def _committed(self, recorded: list[Recorded]) -> list[Recorded]:
        self.batches += 1
        self.items += len(recorded)
        if self.after_commit is not None:
            inserted = [r.row_id for r in recorded if not r.duplicate]
            if inserted:
                # The hand-off continues the first delivery's trace and links the others of the batch.
                contexts = [self._traces.get(row_id) for row_id in inserted]
                try:
                    with (
                        tracing.attached(contexts[0]),
                        tracing.span(
                            "tether.webhook.batch",
                            {"tether.deliveries": len(inserted)},
                            links=tracing.links(contexts[1:]),
                        ),
                    ):
                        self.after_commit(inserted)
                except Exception as exc:
                    log.warning(
                        "handing off %d recorded deliveries failed (%s); left for the sweep",
                        len(inserted),
                        type(exc).__name__,
                    )
        return recorded

    async def record(self, item: NewDelivery) -> Recorded:
        if not tracing.enabled():
            return await self._coalescer.submit(item)
        self._traces[item.row_id] = tracing.capture()  # the batch hands off on another thread or task
        try:
            return await self._coalescer.submit(item)
        finally:
            self._traces.pop(item.row_id, None)


# -- processing ------------------------------------------------------------------------------------------------


@dataclass
class DeliveryOutcome:
    status: DeliveryStatus
    event_type: str = ""
    event: str = ""
    payloads: int = 0
    persisted: int = 0
    filtered: int = 0
    rejected: int = 0
    runs: list[str] = field(default_factory=list)
    error_code: str = ""


async def dispatch_operation(runtime: Services, integration_id: str, operation_id: str, config: dict[str, Any]) -> str:
    """The one way a webhook hands an operation to the execution layer (trigger ``webhook``)."""
    return await runtime.executor.dispatch(integration_id, operation_id, trigger="webhook", config=config)


#: Deliveries claimed and finished per statement: a message's row IDs are processed in chunks of this many, each
#: chunk one claim and one finish (a worker used to pay both per delivery, one after the other). A worker that dies
#: mid-chunk leaves the chunk's claimed rows to the sweep once their lease runs out, so the handlers of at most this
#: many deliveries run again, where they were one before (handlers are at-least-once across a crash either way).
CLAIM_BATCH = 100


def _start_run(db: Database, integration: IntegrationRef, event: type[WebhookEvent], row: Claimed) -> str:
    run = Run(
        integration_id=integration.id,
        tenant_id=integration.tenant_id,
        operation=event.event_id(),
        trigger="webhook",
        status=RunStatus.running,
        delivery_id=row.id,
        started_at=utcnow(),
        attempts=row.attempts,
    )
    with db.session() as session:
        session.add(run)
    return run.id


def _refusal(
    row: Claimed, loaded: tuple[EndpointRef, IntegrationRef] | None, webhook: type[Webhook] | None
) -> tuple[str, str] | None:
    """Why a claimed delivery is not processed at all (its code and message), or ``None`` when it is."""
    if row.attempts > MAX_ATTEMPTS:
        return "too_many_attempts", f"processing did not finish in {MAX_ATTEMPTS} attempts"
    if loaded is None or webhook is None:
        return "webhook_unknown", "the endpoint's webhook is no longer declared"
    if loaded[1].status == IntegrationStatus.disconnected:
        # Recorded in the moments after a disconnect (another process's endpoint cache): kept, not processed.
        return "integration_disconnected", "the integration was disconnected before this delivery was processed"
    return None


def _event_type(
    runtime: Services, integration: IntegrationRef, webhook: type[Webhook], payload: Any, headers: Mapping[str, str]
) -> str:
    """The delivery's event type as its webhook locates it; escaped when the database could not store it."""
    where = webhook.event_type
    value = locate(runtime, integration.definition_id, webhook, "event_type", where, payload, headers) or ""
    if not storable(value):  # no event matches NUL or a lone surrogate; keep it readable, and storable
        value = value.encode("unicode_escape").decode("ascii")
    return value


@dataclass
class _Handling:
    """One routed delivery through its event's handler: operations it dispatches, payloads it ingests (a run is
    started with the first batch), and the final write it asks for (``Finish``, written with its chunk's)."""

    runtime: Services
    row: Claimed
    integration: IntegrationRef
    event: type[WebhookEvent]
    outcome: DeliveryOutcome
    send: Dispatcher
    run_id: str | None = None
    pipeline: IngestPipeline | None = None
    #: Records persisted and removed per schema, and the change-feed range ``(after, until)`` of the writes.
    written: dict[str, int] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)
    window: tuple[int, int] | None = None

    async def dispatch(self, operation: type[Operation], config: dict[str, Any]) -> str:
        run = await self.send(self.runtime, self.integration.id, operation.operation_id(), dict(config))
        self.outcome.runs.append(run)
        return run

    async def flush(self, batch: list[Payload]) -> None:
        if not batch:
            return
        db, integration = self.runtime.db, self.integration
        if self.run_id is None or self.pipeline is None:
            self.run_id = await anyio.to_thread.run_sync(_start_run, db, integration, self.event, self.row)
            self.pipeline = IngestPipeline(self.runtime.registry, db)
        ctx = IngestContext(
            tenant_id=integration.tenant_id,
            integration_id=integration.id,
            definition_id=integration.definition_id,
            emits=self.event.emits,
            integration_filter=compile_integration_filter(integration.filter_expr),
            run_id=self.run_id,
            delivery_id=self.row.id,
            source="webhook",
            origin=self.event.event_id(),
        )
        result = await anyio.to_thread.run_sync(self.pipeline.process, ctx, list(batch), self.outcome.payloads)
        self.outcome.payloads += result.received
        self.outcome.persisted += result.persisted
        self.outcome.filtered += result.filtered
        self.outcome.rejected += result.rejected
        for into, counts in ((self.written, result.persisted_by_schema), (self.removed, result.removed_by_schema)):
            for schema, count in counts.items():
                into[schema] = into.get(schema, 0) + count
        if result.changes is not None:
            first, last = result.changes
            after = first - 1 if self.window is None else min(self.window[0], first - 1)
            self.window = (after, last)
        batch.clear()

    def context(self, payload: Any, headers: dict[str, str]) -> EventContext:
        integration, event_type = self.integration, self.outcome.event_type
        return EventContext(
            integration_id=integration.id,
            event_type=event_type,
            delivery_id=self.row.delivery_id,
            payload=payload,
            headers=headers,
            dispatch=self.dispatch,
            tenant_id=integration.tenant_id,
            delivery_row_id=self.row.id,
            body=self.row.body,
            subscriptions=EndpointSubscriptions(self.runtime.db, self.row.endpoint_id),
            cleanup=lambda: self.runtime.custody.release(
                integration.id, actor="provider", reason=f"the provider reported {event_type}"
            ),
        )

    async def run(self, payload: Any, headers: dict[str, str]) -> Finish:
        row, outcome = self.row, self.outcome
        try:
            batch: list[Payload] = []
            async for item in self.event().handle(self.context(payload, headers)):
                batch.append(item)
                if len(batch) >= INGEST_PAGE:
                    await self.flush(batch)
            await self.flush(batch)
        except Exception as exc:
            code = exc.code if isinstance(exc, TetherError) else "handler_error"
            # A TetherError's message is safe to show; anything else may carry anything, so only its type is kept.
            message = exc.message if isinstance(exc, TetherError) else f"the handler raised {type(exc).__name__}"
            log.warning("webhook delivery %s failed: %s", row.id, code)
            outcome.status, outcome.error_code = DeliveryStatus.failed, code
            return Finish(
                row,
                DeliveryStatus.failed,
                event_type=outcome.event_type,
                code=code,
                message=message,
                run_id=self.run_id,
                run_failed=True,
            )
        event = None
        if self.window is not None and self.run_id is not None:  # records changed: announced with the finish
            integration = self.integration
            event = records_changed(
                integration.tenant_id, self.run_id, integration.id, self.written, self.window, removed=self.removed
            )
        return Finish(row, DeliveryStatus.processed, event_type=outcome.event_type, run_id=self.run_id, event=event)


def delivery_lease(runtime: Services) -> timedelta:
    """How long a worker's claim on a delivery holds before another may take it over (its worker died or was cut
    off): ``TETHER_DELIVERY_LEASE_SECONDS``."""
    return timedelta(seconds=runtime.settings.delivery_lease_seconds)


async def process_delivery(
    runtime: Services,
    delivery_row_id: str,
    *,
    dispatcher: Dispatcher | None = None,
    lease: timedelta | None = None,
) -> DeliveryOutcome | None:
    """Process one recorded delivery (a chunk of one); ``None`` when another worker holds it or it is already final.
    ``lease``: how old another worker's claim must be before this one takes the row over (default
    ``TETHER_DELIVERY_LEASE_SECONDS``). A database error claiming or finishing it is raised."""
    lease = lease if lease is not None else delivery_lease(runtime)
    [outcome] = await _Chunk(runtime, [delivery_row_id], lease, dispatcher or dispatch_operation).process()
    return outcome


async def process_deliveries(
    runtime: Services,
    row_ids: Sequence[str],
    *,
    concurrency: int = 8,
    gate: asyncio.Semaphore | None = None,
    dispatcher: Dispatcher | None = None,
    lease: timedelta | None = None,
) -> list[DeliveryOutcome | None]:
    """Process recorded deliveries (a queue message's row IDs) in chunks of ``CLAIM_BATCH``: each chunk is one
    claim and one finish, with the handlers of the rows claimed in between, at most ``concurrency`` at a time, each
    only when ``gate`` (a semaphore shared with other calls, if given) lets it through. One entry per ID, in order;
    ``None`` for a row not processed here (final already, held by another worker, repeated, or left for the sweep).

    One delivery's failure does not stop the others, nor a chunk's the next chunk: what could not be finished
    stays ``received`` and the sweep retries it once its lease runs out."""
    lease = lease if lease is not None else delivery_lease(runtime)
    send = dispatcher or dispatch_operation
    results: list[DeliveryOutcome | None] = []
    for start in range(0, len(row_ids), CLAIM_BATCH):
        ids = list(row_ids[start : start + CLAIM_BATCH])
        try:
            results += await _Chunk(runtime, ids, lease, send, concurrency=concurrency, gate=gate).process()
        except Exception as exc:
            log.warning("processing %d deliveries raised %s; left for the sweep", len(ids), type(exc).__name__)
            results += [None] * len(ids)
    return results


class _Chunk:
    """One chunk of a message's deliveries: claimed together, handled one by one (or ``concurrency`` at a time),
    finished together.

    The claims of a chunk are taken at once, so the last of them waits for the handlers before it. Before a
    handler starts past half the lease, the lease of every row still waiting is stamped again (``renew_leases``,
    fenced by the claimed attempt): a row the sweep gave another worker meanwhile is skipped, not processed twice.

    ``concurrency`` coroutines take the rows in turn (not one task per row): anyio looks through every task of the
    loop on each thread hop when the loop was not started by ``asyncio.run`` (a Dramatiq worker's), so thousands of
    waiting tasks would make every hop slow."""

    def __init__(
        self,
        runtime: Services,
        row_ids: list[str],
        lease: timedelta,
        send: Dispatcher,
        *,
        concurrency: int = 1,
        gate: asyncio.Semaphore | None = None,
    ) -> None:
        self.runtime, self.row_ids, self.lease, self.send = runtime, row_ids, lease, send
        self.concurrency, self.gate = concurrency, gate
        self.claimed_at = utcnow()
        #: Rows claimed and not yet handled (their leases are renewed together).
        self.waiting: dict[str, Claimed] = {}
        self._renewing = asyncio.Lock()
        self._webhooks: dict[tuple[str, str], type[Webhook] | None] = {}

    async def process(self) -> list[DeliveryOutcome | None]:
        db = self.runtime.db
        claimed = await claim_deliveries(db, self.row_ids, self.lease, now=self.claimed_at)
        todo = [(index, entry) for index, entry in enumerate(claimed) if entry is not None]
        self.waiting = {entry[0].id: entry[0] for _, entry in todo}
        handled: list[tuple[int, DeliveryOutcome, Finish]] = []
        turns = iter(todo)

        async def take_turns() -> None:
            for index, (row, loaded) in turns:
                if not await self._still_held(row):
                    continue
                if self.gate is None:
                    done = await self._one(row, loaded)
                else:
                    async with self.gate:
                        done = await self._one(row, loaded)
                if done is not None:
                    handled.append((index, *done))

        workers = max(1, min(self.concurrency, len(todo)))
        if workers == 1:
            await take_turns()
        else:
            await asyncio.gather(*(take_turns() for _ in range(workers)))
        results: list[DeliveryOutcome | None] = [None] * len(self.row_ids)
        won = await finish_deliveries(db, [finish for _, _, finish in handled])
        for (index, outcome, finish), held in zip(handled, won, strict=True):
            if held:
                results[index] = outcome
            else:  # another worker took the row over after this claim's lease ran out; its write stands
                log.info("delivery %s was taken over by a newer claim; this attempt wrote nothing", finish.row.id)
        return results

    async def _still_held(self, row: Claimed) -> bool:
        """Whether this chunk's claim on ``row`` still holds: past half the lease, every waiting row's lease is
        stamped again first."""
        async with self._renewing:
            self.waiting.pop(row.id, None)
            now = utcnow()
            if now - self.claimed_at < self.lease / 2:
                return True
            held = await renew_leases(self.runtime.db, [row, *self.waiting.values()], now=now)
            self.claimed_at = now
            for lost in [row_id for row_id in self.waiting if row_id not in held]:
                del self.waiting[lost]
            if row.id not in held:
                log.info("delivery %s was taken over while it waited in its chunk; skipped", row.id)
            return row.id in held

    async def _one(
        self, row: Claimed, loaded: tuple[EndpointRef, IntegrationRef] | None
    ) -> tuple[DeliveryOutcome, Finish] | None:
        """Handle one claimed row in its own span and log context; ``None`` when something other than its handler
        raised (it stays claimed, for the sweep)."""
        with (
            log_context(delivery_id=row.id),  # every log line below carries the delivery's IDs
            tracing.span("tether.webhook.process", {"tether.delivery.id": row.id}) as span,
        ):
            try:
                outcome, finish = await self._handle(row, loaded)
            except Exception as exc:
                log.warning("processing delivery %s raised %s; left for the sweep", row.id, type(exc).__name__)
                tracing.fail(span, type(exc).__name__)
                return None
            if span.is_recording():
                span.set_attribute("tether.delivery.outcome", outcome.status.value)
                span.set_attribute("tether.webhook.event_type", outcome.event_type[:100])
                span.set_attribute("tether.runs", len(outcome.runs))
                if outcome.error_code:
                    tracing.fail(span, outcome.error_code)
            return outcome, finish

    def _webhook(self, definition_id: str, name: str) -> type[Webhook] | None:
        key = (definition_id, name)
        if key not in self._webhooks:
            self._webhooks[key] = webhook_class(self.runtime, definition_id, name)
        return self._webhooks[key]

    async def _handle(
        self, row: Claimed, loaded: tuple[EndpointRef, IntegrationRef] | None
    ) -> tuple[DeliveryOutcome, Finish]:
        runtime = self.runtime
        add_log_ids(integration_id=loaded[1].id if loaded else None)
        metrics.delivery_lag(loaded[1].definition_id if loaded else "unknown", row.received_at)
        webhook = self._webhook(loaded[1].definition_id, loaded[0].webhook) if loaded else None
        refused = _refusal(row, loaded, webhook)
        if refused is not None:
            code, message = refused
            return DeliveryOutcome(DeliveryStatus.failed, error_code=code), Finish(
                row, DeliveryStatus.failed, code=code, message=message
            )
        assert loaded is not None and webhook is not None  # refused above otherwise
        integration = loaded[1]
        headers = lower_headers(row.headers)
        payload = parse_body(row.body, headers)
        event_type = _event_type(runtime, integration, webhook, payload, headers)
        event = next((e for e in webhook.events if e.match == event_type), None)
        if event is None:
            log.info("webhook delivery %s unrouted (event type %r)", row.id, event_type[:100])
            return DeliveryOutcome(DeliveryStatus.unrouted, event_type=event_type), Finish(
                row, DeliveryStatus.unrouted, event_type=event_type
            )
        outcome = DeliveryOutcome(DeliveryStatus.processed, event_type=event_type, event=event.event_id())
        finish = await _Handling(runtime, row, integration, event, outcome, self.send).run(payload, headers)
        return outcome, finish


def pending_deliveries(
    db: Database, *, older_than: timedelta, lease: timedelta, limit: int, include_failed: bool = False
) -> list[str]:
    now = utcnow()
    with db.session() as session:
        if include_failed:
            session.execute(
                update(WebhookDelivery)
                .where(
                    col(WebhookDelivery.status) == DeliveryStatus.failed.value,
                    col(WebhookDelivery.attempts) < MAX_ATTEMPTS,
                    col(WebhookDelivery.error_code) != "too_many_attempts",
                )
                .values(status=DeliveryStatus.received.value, processed_at=None)
            )
        return list(
            session.exec(
                select(WebhookDelivery.id)
                .where(
                    col(WebhookDelivery.status) == DeliveryStatus.received.value,
                    col(WebhookDelivery.received_at) <= now - older_than,
                    or_(col(WebhookDelivery.processed_at).is_(None), col(WebhookDelivery.processed_at) < now - lease),
                )
                .order_by(col(WebhookDelivery.received_at))
                .limit(limit)
            )
        )


async def redeliver_pending(
    runtime: Services,
    *,
    older_than: timedelta = timedelta(minutes=1),
    lease: timedelta | None = None,
    limit: int = 100,
    include_failed: bool = False,
    dispatcher: Dispatcher | None = None,
) -> list[DeliveryOutcome]:
    """The recovery sweep: process deliveries recorded at least ``older_than`` ago whose processing never started
    or whose claim has outlived ``lease``. ``include_failed`` also retries failed deliveries with attempts left."""
    lease = lease if lease is not None else delivery_lease(runtime)
    ids = await anyio.to_thread.run_sync(
        lambda: pending_deliveries(
            runtime.db, older_than=older_than, lease=lease, limit=limit, include_failed=include_failed
        )
    )
    out: list[DeliveryOutcome] = []
    for start in range(0, len(ids), CLAIM_BATCH):
        chunk = _Chunk(runtime, ids[start : start + CLAIM_BATCH], lease, dispatcher or dispatch_operation)
        out += [outcome for outcome in await chunk.process() if outcome is not None]
    return out
