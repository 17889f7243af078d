"""The ingest path (DESIGN.md §7): provider-shaped payloads in, typed rows out.

For each payload, in order: is its (schema, variant) declared by the source? → the mapping for (schema, variant)
→ the integration's filter → the definition's filter → the map → validation into the generated ingest type →
persistence (batched, per schema, through ``generated.routing``). CEL sees ``envelope``, ``variant``,
``resource``, ``action`` and ``payload``. An empty filter keeps everything; an empty map passes the payload as is.

A record that cannot be ingested (an undeclared schema, an evaluation error, a filter that is not boolean, a
validation error, a lookup that matches nothing, a row the database refuses) becomes an ``ingest_reject`` row with
a reason code, a reason and its position: it never crashes the run and is never dropped silently. A call is one
transaction: its rows, its rejects, the run's counters and the change-feed rows of what it inserted or changed
(``ingest.changes``; last, so the tenant's sequence lock is held only until the commit) commit together.

A payload marked ``remove`` (a provider's delete) goes the same way up to the map; then only the model's upsert keys
are validated, and the integration's record with those keys is deleted with the records that reference it and
their ``remove`` changes (``ingest.changes.remove_records``), in the call's transaction and in the payloads' order
(upserts still pending before it are written first, so an upsert and a later delete of one record end deleted).

For the schemas ``IngestContext.snapshot`` names, the result carries the upsert keys of every record persisted
(``IngestResult.seen``), so a run that listed a schema completely can remove what it did not see
(``remove_unseen``).

The execution layer calls, per page of payloads::

    pipeline = IngestPipeline(registry, db)
    ctx = IngestContext(tenant_id=..., integration_id=..., definition_id=..., emits=operation.emits,
                        integration_filter=compile_integration_filter(integration.filter_expr), run_id=run.id)
    result = pipeline.process(ctx, payloads, start_position=records_seen_so_far)
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import celpy
from pydantic import ValidationError, create_model
from sqlalchemy import Connection, insert, select, update

from engine.authoring.definition import Definition
from engine.authoring.mappings import Mapping as MappingSpec
from engine.authoring.operations import Emits, Payload
from engine.catalog.registry import CompiledMapping, Registry
from engine.cel import Expression, compile_expression
from engine.errors import CelError, TetherError
from engine.store.tables import IngestReject, Run, new_id, utcnow
from ingest.catalog import ModelSpec, catalog
from ingest.changes import Change, record_changes, remove_ids, remove_records, table_of
from ingest.fields import IngestInput
from ingest.persistence.stock import PersistBatch, PersistRejection, Record

RecordStatus = Literal["filtered", "mapped", "rejected"]

#: Stable reason codes of ``ingest_reject`` rows.
REASON_CODES = (
    "undeclared_schema",  # the source did not declare this (schema, variant)
    "unknown_schema",  # no internal model has this schema name
    "no_mapping",  # the definition has no mapping for (schema, variant)
    "filter_error",  # a filter failed to evaluate
    "filter_not_boolean",  # a filter produced something other than true/false
    "map_error",  # the map failed to evaluate
    "map_not_object",  # the map produced something other than an object
    "validation_failed",  # the mapped object does not fit the model's ingest type
    "lookup_unresolved",  # a reference matches no row of its target in this integration
    "persist_failed",  # the database refused the row
)

_REASON_MAX = 1000
_NAME_MAX = 100


class IntegrationFilterError(TetherError):
    """An integration's filter expression does not compile; refuse it when it is saved."""

    code = "invalid_integration_filter"
    status = 422


@lru_cache(maxsize=512)
def _compile_filter(text: str) -> Expression:
    return compile_expression(text)


def compile_integration_filter(text: str | None) -> Expression | None:
    """Compile an integration's filter once (cached by text, bounded); ``None`` for an empty filter.

    Raises ``IntegrationFilterError`` for an expression that does not compile.
    """
    if text is None or not text.strip():
        return None
    try:
        return _compile_filter(text.strip())
    except CelError as exc:
        raise IntegrationFilterError(f"integration filter {exc.message}") from None


def declared_emits(definition: Definition) -> frozenset[tuple[str, str]]:
    """Every (schema, variant) any operation or webhook event of a definition declares."""
    out = {(e.schema, e.variant) for op in definition.operations for e in op.emits}
    out |= {(e.schema, e.variant) for w in definition.webhooks for ev in w.events for e in ev.emits}
    return frozenset(out)


@dataclass(frozen=True)
class IngestContext:
    """Who the payloads belong to and what their source declared."""

    tenant_id: str
    integration_id: str
    definition_id: str
    #: What the operation or webhook event declared: ``Emits`` or ``(schema, variant)`` pairs.
    emits: Iterable[Emits | tuple[str, str]] = ()
    #: The integration's compiled filter (``compile_integration_filter(integration.filter_expr)``).
    integration_filter: Expression | None = None
    run_id: str | None = None
    delivery_id: str | None = None
    source: Literal["operation", "webhook", "workflow", "direct"] = "operation"
    #: The operation ID or webhook event that produced the payloads (visible to CEL as ``envelope.origin``).
    origin: str = ""
    #: Schemas this source lists completely (``Operation.complete_snapshots``): their persisted keys are collected.
    snapshot: frozenset[str] = frozenset()
    declared: frozenset[tuple[str, str]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        pairs = {(e.schema, e.variant) if isinstance(e, Emits) else (e[0], e[1]) for e in self.emits}
        object.__setattr__(self, "declared", frozenset(pairs))


@dataclass(frozen=True)
class RecordOutcome:
    """What the path made of one payload (``object`` when mapped, the reason when rejected)."""

    position: int
    status: RecordStatus
    schema: str
    variant: str
    object: IngestInput | None = None
    reason_code: str = ""
    reason: str = ""
    #: A provider's delete: ``object`` holds only the upsert keys of the record to remove.
    remove: bool = False


@dataclass(frozen=True)
class Reject:
    position: int
    schema: str
    variant: str
    reason_code: str
    reason: str


@dataclass
class IngestResult:
    """Counts of one call (``received == filtered + persisted + removed + rejected``) and the rejects it wrote.

    ``removed`` counts the removal payloads applied (a removal of a record Tether did not hold included); the records
    they took with them, and what they changed, are in the change feed."""

    received: int = 0
    filtered: int = 0
    persisted: int = 0
    removed: int = 0
    rejected: int = 0
    rejects: list[Reject] = field(default_factory=list)
    #: Per schema of ``IngestContext.snapshot``: the upsert keys of the records persisted.
    seen: dict[str, set[tuple[Any, ...]]] = field(default_factory=dict)
    #: The change-feed sequences this call wrote, ``(first, last)``; ``None`` if it changed nothing.
    changes: tuple[int, int] | None = None

    #: Records persisted per schema (``records.changed`` events carry them).
    persisted_by_schema: dict[str, int] = field(default_factory=dict)
    #: Records removed per schema by removal payloads (the records referencing them not counted).
    removed_by_schema: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class PythonExpression:
    """A plain Python function standing in for a CEL expression (tests, benchmarks, hand-written mappings)."""

    fn: Callable[[dict[str, Any]], Any]
    text: str = "<python>"

    def evaluate(self, activation: dict[str, Any]) -> Any:
        return self.fn(activation)


def python_mapping(
    schema: str,
    variant: str = "",
    *,
    filter: Callable[[dict[str, Any]], Any] | None = None,
    map: Callable[[dict[str, Any]], Any] | None = None,
) -> CompiledMapping:
    """A mapping written as Python functions of the CEL activation, usable wherever a compiled mapping is."""
    return CompiledMapping(
        MappingSpec(schema, variant),
        PythonExpression(filter) if filter else None,  # type: ignore[arg-type]
        PythonExpression(map) if map else None,  # type: ignore[arg-type]
    )


Persist = Callable[[PersistBatch], list[PersistRejection]]


class IngestPipeline:
    """The shared ingest path. Thread-safe; create one per process and reuse it."""

    def __init__(
        self,
        registry: Registry,
        db: Any = None,
        *,
        batch_size: int = 1000,
        mappings: Mapping[tuple[str, str, str], CompiledMapping] | None = None,
        routes: Mapping[str, Persist] | None = None,
        types: Mapping[str, type[IngestInput]] | None = None,
        models: Mapping[str, ModelSpec] | None = None,
        changes: bool = True,
    ) -> None:
        """``db`` is an ``engine.store.database.Database`` (only ``process`` needs it). ``mappings`` overrides the
        registry's mapping for ``(definition_id, schema, variant)``; ``routes``, ``types`` and ``models`` default to
        the generated routing and ingest types (plus the host models', ``ingest.model_types``) and the ingest
        catalog. ``changes=False`` writes no change feed (benchmarks measure its cost with it)."""
        if routes is None or types is None:
            from ingest.model_types import ingest_routes, ingest_types

            routes = ingest_routes() if routes is None else routes
            types = ingest_types() if types is None else types
        self.registry = registry
        self.db = db
        self.batch_size = batch_size
        self.overrides = dict(mappings or {})
        self.routes = routes
        self.types = types
        self.models = models if models is not None else catalog()
        self.changes = changes

    # -- evaluation (no database) ----------------------------------------------------------------------------

    def evaluate(self, ctx: IngestContext, payload: Payload, position: int = 0) -> RecordOutcome:
        """Route, filter, map and validate one payload; never raises for anything in the payload."""
        schema, variant = str(payload.schema), str(payload.variant)

        def reject(code: str, reason: str) -> RecordOutcome:
            return RecordOutcome(position, "rejected", schema, variant, reason_code=code, reason=reason)

        if (schema, variant) not in ctx.declared:
            return reject("undeclared_schema", f"({schema}, {variant!r}) is not declared by the source")
        input_type = self.types.get(schema)
        if input_type is None or schema not in self.models:
            return reject("unknown_schema", f"no internal model has schema {schema!r}")
        mapping = self._mapping(ctx.definition_id, schema, variant)
        if mapping is None:
            return reject("no_mapping", f"{ctx.definition_id} has no mapping for ({schema}, {variant!r})")
        data = payload.data
        activation = {
            "envelope": {
                "tenant_id": ctx.tenant_id,
                "integration_id": ctx.integration_id,
                "definition_id": ctx.definition_id,
                "source": ctx.source,
                "origin": ctx.origin,
                "schema": schema,
                "variant": variant,
                "resource": payload.resource,
                "action": payload.action,
                "payload": data,
            },
            "variant": variant,
            "resource": payload.resource,
            "action": payload.action,
            "payload": data,
        }
        for which, expression in (("integration", ctx.integration_filter), ("definition", mapping.filter)):
            if expression is None:
                continue
            try:
                keep = expression.evaluate(activation)
            except Exception as exc:  # any failure of one record's evaluation rejects that record
                return reject("filter_error", f"{which} filter: {_error_text(exc)}")
            if isinstance(keep, BaseException):
                return reject("filter_error", f"{which} filter: {_error_text(keep)}")
            if not isinstance(keep, bool):
                return reject("filter_not_boolean", f"{which} filter produced {_kind(keep)}, not a boolean")
            if not keep:
                return RecordOutcome(position, "filtered", schema, variant)
        if mapping.map is None:
            mapped = data
        else:
            try:
                mapped = mapping.map.evaluate(activation)
            except Exception as exc:  # the map failing on one record rejects that record
                return reject("map_error", f"map: {_error_text(exc)}")
        if not isinstance(mapped, dict):
            return reject("map_not_object", f"the map produced {_kind(mapped)}, not an object")
        if payload.remove:
            return self._removal(position, schema, variant, input_type, mapped)
        try:
            obj = input_type.model_validate(mapped)
        except ValidationError as exc:
            # A typed field holding one of celpy's in-place error values fails validation: report the CEL error.
            embedded = _embedded_error(mapped)
            if embedded is not None:
                return reject("map_error", f"map: {embedded}")
            return reject("validation_failed", _validation_text(exc))
        except Exception as exc:  # a validator tripping on an odd value is still a validation failure
            return reject("validation_failed", f"validation failed: {type(exc).__name__}")
        for key, value in mapped.items():  # untyped (JSON) fields accept anything: look inside those only
            if isinstance(value, dict | list):
                embedded = _embedded_error(value, str(key))
                if embedded is not None:
                    return reject("map_error", f"map: {embedded}")
        return RecordOutcome(position, "mapped", schema, variant, object=obj)

    def dry_run(self, ctx: IngestContext, payloads: Sequence[Payload], start_position: int = 0) -> list[RecordOutcome]:
        """What ``process`` would do with each payload, without touching the database."""
        return [self.evaluate(ctx, p, start_position + i) for i, p in enumerate(payloads)]

    # -- the whole path --------------------------------------------------------------------------------------

    def process(self, ctx: IngestContext, payloads: Sequence[Payload], start_position: int = 0) -> IngestResult:
        """Ingest one page of payloads in one transaction; returns the counts (also added to the run)."""
        if self.db is None:
            raise RuntimeError("IngestPipeline.process needs a database")
        if ctx.definition_id not in self.registry:
            raise KeyError(f"definition {ctx.definition_id!r} is not registered")
        result = IngestResult(received=len(payloads))
        pending: dict[str, list[Record]] = {}
        context = {"tenant_id": ctx.tenant_id, "integration_id": ctx.integration_id, "definition_id": ctx.definition_id}
        variants: dict[int, tuple[str, str, Any]] = {}
        changes: list[Change] | None = [] if self.changes else None
        with self.db.engine.begin() as connection:
            for index, payload in enumerate(payloads):
                position = start_position + index
                outcome = self.evaluate(ctx, payload, position)
                if outcome.status == "filtered":
                    result.filtered += 1
                elif outcome.status == "rejected":
                    self._reject(result, outcome.schema, outcome.variant, position, outcome)
                    variants[position] = (outcome.schema, outcome.variant, payload.data)
                elif outcome.remove:
                    for schema in self._flush_order(pending):  # the payloads' order: earlier upserts first
                        self._flush(connection, ctx, pending, schema, result, changes)
                    self._remove(connection, ctx, outcome, result, changes)
                    variants[position] = (outcome.schema, outcome.variant, payload.data)
                else:
                    assert outcome.object is not None
                    spec = self.models[outcome.schema]
                    values = outcome.object.model_dump()
                    for column, source in spec.context:
                        values[column] = context[source]
                    batch = pending.setdefault(outcome.schema, [])
                    batch.append(Record(position, values))
                    variants[position] = (outcome.schema, outcome.variant, payload.data)
                    if len(batch) >= self.batch_size:
                        self._flush(connection, ctx, pending, outcome.schema, result, changes)
            for schema in self._flush_order(pending):
                self._flush(connection, ctx, pending, schema, result, changes)
            self._write_rejects(connection, ctx, result, variants)
            if ctx.run_id:
                connection.execute(
                    update(Run)
                    .where(Run.id == ctx.run_id)  # type: ignore[arg-type]
                    .values(
                        payloads_out=Run.payloads_out + result.received,
                        records_ingested=Run.records_ingested + result.persisted,
                        records_filtered=Run.records_filtered + result.filtered,
                        records_rejected=Run.records_rejected + result.rejected,
                    )
                )
            if changes:
                result.changes = record_changes(connection, ctx.tenant_id, changes)
        return result

    def remove_unseen(self, ctx: IngestContext, schema: str, seen: set[tuple[Any, ...]]) -> int:
        """Remove the integration's records of ``schema`` whose upsert keys are not in ``seen`` (a complete
        listing's), with those referencing them, and their ``remove`` changes, in one transaction; returns how
        many records of ``schema`` went. The caller decides whether the listing may be trusted."""
        if self.db is None:
            raise RuntimeError("IngestPipeline.remove_unseen needs a database")
        spec = self.models[schema]
        table = table_of(schema)
        keys = [table.c[k] for k in spec.upsert]
        query = select(table.c.id, *keys).where(
            table.c.tenant_id == ctx.tenant_id, table.c.integration_id == ctx.integration_id
        )
        with self.db.engine.begin() as connection:
            unseen = [row[0] for row in connection.execute(query) if tuple(row[1:]) not in seen]
            removed = remove_ids(connection, schema, ctx.tenant_id, ctx.integration_id, unseen)
            if self.changes:
                record_changes(connection, ctx.tenant_id, removed)
        return sum(1 for change in removed if change.schema == schema)

    # -- internals -------------------------------------------------------------------------------------------

    def _removal(
        self, position: int, schema: str, variant: str, input_type: type[IngestInput], mapped: dict[str, Any]
    ) -> RecordOutcome:
        """A removal's outcome: the mapped object's upsert keys, validated as the model's ingest type has them."""
        keys = self.models[schema].upsert
        try:
            obj = _key_type(input_type, keys).model_validate(mapped)
        except ValidationError as exc:
            embedded = _embedded_error({k: mapped.get(k) for k in keys})
            if embedded is not None:
                return RecordOutcome(
                    position, "rejected", schema, variant, reason_code="map_error", reason=f"map: {embedded}"
                )
            return RecordOutcome(
                position, "rejected", schema, variant, reason_code="validation_failed", reason=_validation_text(exc)
            )
        return RecordOutcome(position, "mapped", schema, variant, object=obj, remove=True)

    def _remove(
        self,
        connection: Connection,
        ctx: IngestContext,
        outcome: RecordOutcome,
        result: IngestResult,
        changes: list[Change] | None,
    ) -> None:
        """Delete the integration's record with the outcome's upsert keys (and its dependents), recording changes."""
        assert outcome.object is not None
        table = table_of(outcome.schema)
        values = outcome.object.model_dump()
        conditions = [table.c[key] == values[key] for key in self.models[outcome.schema].upsert]
        removed = remove_records(connection, outcome.schema, ctx.tenant_id, ctx.integration_id, *conditions)
        result.removed += 1
        gone = sum(1 for change in removed if change.schema == outcome.schema)
        if gone:
            result.removed_by_schema[outcome.schema] = result.removed_by_schema.get(outcome.schema, 0) + gone
        if changes is not None:
            changes.extend(removed)

    def _mapping(self, definition_id: str, schema: str, variant: str) -> CompiledMapping | None:
        override = self.overrides.get((definition_id, schema, variant))
        if override is not None:
            return override
        try:
            return self.registry.mapping(definition_id, schema, variant)
        except KeyError:
            return None

    def _flush_order(self, pending: dict[str, list[Record]]) -> list[str]:
        # Targets of references first, so a page holding accounts and their memberships resolves in one call.
        return sorted(pending, key=lambda s: len(self.models[s].references))

    def _flush(
        self,
        connection: Connection,
        ctx: IngestContext,
        pending: dict[str, list[Record]],
        schema: str,
        result: IngestResult,
        changes: list[Change] | None,
    ) -> None:
        records = pending.pop(schema, None)
        if not records:
            return
        spec = self.models[schema]
        for ref in spec.references:
            self._flush(connection, ctx, pending, ref.target, result, changes)
        batch = PersistBatch(
            connection, spec, ctx.tenant_id, ctx.integration_id, ctx.definition_id, records, changes=changes
        )
        refused = self.routes[schema](batch)
        result.persisted += len(records) - len(refused)
        result.persisted_by_schema[schema] = result.persisted_by_schema.get(schema, 0) + len(records) - len(refused)
        for r in refused:
            self._reject(result, schema, None, r.position, r)
        if schema in ctx.snapshot:
            lost = {r.position for r in refused}
            seen = result.seen.setdefault(schema, set())
            seen.update(tuple(r.values[k] for k in spec.upsert) for r in records if r.position not in lost)

    def _reject(
        self, result: IngestResult, schema: str, variant: str | None, position: int, why: RecordOutcome | Any
    ) -> None:
        result.rejected += 1
        result.rejects.append(Reject(position, schema, variant or "", why.reason_code, why.reason))

    def _write_rejects(
        self,
        connection: Connection,
        ctx: IngestContext,
        result: IngestResult,
        sources: dict[int, tuple[str, str, Any]],
    ) -> None:
        if not result.rejects:
            return
        now = utcnow()
        rows = []
        for reject in result.rejects:
            schema, variant, data = sources.get(reject.position, (reject.schema, reject.variant, None))
            rows.append(
                {
                    "id": new_id(),
                    "run_id": ctx.run_id,
                    "delivery_id": ctx.delivery_id,
                    "integration_id": ctx.integration_id,
                    "position": reject.position,
                    "schema_name": _clean(schema, _NAME_MAX),
                    "variant": _clean(variant, _NAME_MAX),
                    "reason_code": reject.reason_code,
                    "reason": _clean(reject.reason, _REASON_MAX),
                    "record": json_safe(data),
                    "created_at": now,
                }
            )
        connection.execute(insert(IngestReject.__table__), rows)  # type: ignore[arg-type]


# -- helpers ---------------------------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _key_type(input_type: type[IngestInput], keys: tuple[str, ...]) -> type[IngestInput]:
    """The ingest type narrowed to its upsert keys (same annotations and validators): what a removal must carry."""
    fields: dict[str, Any] = {
        key: (input_type.model_fields[key].annotation, input_type.model_fields[key]) for key in keys
    }
    return create_model(f"{input_type.__name__}Key", __base__=IngestInput, **fields)


def json_safe(value: Any) -> Any:
    """The record as both databases' JSON columns accept it (non-finite numbers and odd types become text)."""
    try:
        return json.loads(json.dumps(value, allow_nan=False, default=str))
    except (ValueError, TypeError, RecursionError):
        return {"unserializable": _clean(repr(value), _REASON_MAX)}


def _clean(text: str, limit: int) -> str:
    # PostgreSQL text cannot hold NUL characters.
    return str(text).replace("\x00", "\\0")[:limit]


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, CelError):
        return exc.message
    if isinstance(exc, celpy.CELEvalError):
        return f"evaluation failed: {exc.args[0] if exc.args else 'error'}"
    return f"{type(exc).__name__}"


def _embedded_error(value: Any, path: str = "") -> str | None:
    """celpy leaves a failed member of a map or list literal in place as an error value; find the first one."""
    if isinstance(value, BaseException):
        return (f"{path}: " if path else "") + _error_text(value)
    if isinstance(value, dict):
        for key, item in value.items():
            found = _embedded_error(item, f"{path}.{key}" if path else str(key))
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _embedded_error(item, f"{path}[{index}]")
            if found:
                return found
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value)):
        return "a number"
    return {str: "a string", list: "a list", dict: "an object", bytes: "bytes"}.get(type(value), type(value).__name__)


def _validation_text(exc: ValidationError) -> str:
    # Locations and messages only: pydantic's input values are payload data and stay in the stored record.
    parts = []
    for error in exc.errors(include_url=False, include_input=False)[:5]:
        loc = ".".join(str(p) for p in error["loc"]) or "(record)"
        parts.append(f"{loc}: {error['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")
