"""Mapping coverage: over recorded payloads, which model fields each mapping fills, leaves null or never writes,
which payload paths it reads that never arrive, and which payload fields nothing reads.

The quickest way to see a field name of the wrong API version: the mapping reads ``payload.created_at``, every
recorded record says ``added_at``, and the report shows ``created_at`` *never present* and ``source_created_at``
*null* in every record, where a dry run only shows a record that mapped.

Records reach a mapping in one of three ways: a forced ``(schema, variant)`` (the person said which), a cassette
interaction whose request matches a stream's request path (its ``records`` path is read), or, for fixture files
that do not say what they answer, by resemblance: a record goes to the mapping that finds the largest share of the
paths it reads in it, at least half (``MIN_SHARE``); ties go to the first declared. Records no mapping resembles are
counted, not guessed at.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import re2

from engine.authoring.definition import Definition
from engine.authoring.mappings import Mapping
from engine.cel import Expression, compile_expression
from engine.devtools.celreads import ITEM, Path, Reads, dotted, reads
from engine.devtools.payloads import Exchange, Found, records_in
from engine.errors import CelError

#: The share of a mapping's read paths a record must hold to be taken for that mapping's input.
MIN_SHARE = 0.5
_PLACEHOLDER = re2.compile(r"\{[^{}]*\}")


@dataclass
class PathUse:
    path: str
    present: int = 0
    non_null: int = 0


@dataclass
class FieldCoverage:
    """One model field: ``filled`` (non-null in at least one record), ``null`` (written, null in every record) or
    ``not_written`` (the mapping has no such key)."""

    field: str
    status: str
    filled: int
    required: bool
    reads: list[PathUse]


@dataclass
class MappingCoverage:
    schema: str
    variant: str
    records: int = 0
    mapped: int = 0
    filtered: int = 0
    rejected: int = 0
    #: Reject reason codes and how often each came.
    rejects: dict[str, int] = field(default_factory=dict)
    fields: list[FieldCoverage] = field(default_factory=list)
    #: Payload paths the mapping reads that no record holds.
    never_present: list[str] = field(default_factory=list)
    #: Payload fields (leaf paths) of its records the mapping never reads, with how many records hold each.
    unused: list[PathUse] = field(default_factory=list)
    #: Output keys outside the model (the registry refuses those; shown for a mapping not yet registered).
    unknown_keys: list[str] = field(default_factory=list)


@dataclass
class Coverage:
    definition_id: str
    source: str
    files: list[str]
    mappings: list[MappingCoverage]
    #: Records found in the answers that no mapping resembles.
    unassigned: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Compiled:
    mapping: Mapping
    filter: Expression | None
    map: Expression | None
    reads: Reads
    paths: set[Path]


def coverage(
    definition: Definition,
    found: Found,
    *,
    schema: str | None = None,
    variant: str = "",
    models: dict[str, Any] | None = None,
) -> Coverage:
    """The coverage of ``definition``'s mappings over ``found``; ``schema`` (and ``variant``) send every record to
    that one mapping. ``models`` is the ingest catalog (default: ``ingest.catalog.catalog()``)."""
    if models is None:
        from ingest.catalog import catalog

        models = catalog()
    compiled = [_compile(m) for m in definition.mappings]
    if schema is not None:
        compiled = [c for c in compiled if (c.mapping.schema, c.mapping.variant) == (schema, variant)]
        if not compiled:
            raise ValueError(f"{definition.id} has no mapping for ({schema}, {variant!r})")
    streams = _streams(definition)
    assigned: dict[int, list[Any]] = {i: [] for i in range(len(compiled))}
    unassigned = 0
    for exchange in found.exchanges:
        target = _stream_target(streams, compiled, exchange) if schema is None else None
        if target is not None:
            index, records = target
            assigned[index] += [r for r in records if isinstance(r, dict)]
            continue
        for record in records_in(exchange.body) if schema is None else _direct(exchange.body):
            index = 0 if schema is not None else _resembles(compiled, record)
            if index is None:
                unassigned += 1
            else:
                assigned[index].append(record)
    reports = [_measure(definition, c, assigned[i], models) for i, c in enumerate(compiled)]
    return Coverage(definition.id, found.kind, list(found.files), reports, unassigned)


def _compile(mapping: Mapping) -> _Compiled:
    try:
        filter_expr = compile_expression(mapping.filter) if mapping.filter.strip() else None
        map_expr = compile_expression(mapping.map) if mapping.map.strip() else None
    except CelError as exc:
        raise ValueError(f"mapping ({mapping.schema}, {mapping.variant!r}): {exc.message}") from None
    map_reads = reads(mapping.map)
    paths = map_reads.all() | reads(mapping.filter).all()
    if not mapping.map.strip():
        paths = {()}  # no map: the payload is the record as it is
    return _Compiled(mapping, filter_expr, map_expr, map_reads, paths)


def _direct(body: Any) -> list[Any]:
    """Records given for a named mapping: a list of them, or one."""
    if isinstance(body, list):
        return [item for item in body if isinstance(item, dict)]
    return [body] if isinstance(body, dict) else []


# -- assignment -------------------------------------------------------------------------------------------------


def _streams(definition: Definition) -> list[Any]:
    """The stream specs among the definition's operations (``engine.kit.streams.stream_operation`` keeps its
    runner on the class)."""
    specs = []
    for operation in definition.operations:
        runner = getattr(operation, "runner", None)
        spec = getattr(runner, "spec", None)
        if spec is not None and hasattr(spec, "records"):
            specs.append(spec)
    return specs


def _stream_target(streams: list[Any], compiled: list[_Compiled], exchange: Exchange) -> tuple[int, Any] | None:
    if exchange.path is None:
        return None
    from engine.kit.streams import paths as json_paths

    for spec in streams:
        pattern = _path_pattern(spec.request.path)
        if pattern is None or not pattern.fullmatch(exchange.path):
            continue
        if exchange.method and exchange.method.upper() != spec.request.method:
            continue
        for index, c in enumerate(compiled):
            if (c.mapping.schema, c.mapping.variant) == (spec.schema_name, spec.variant):
                records = json_paths.read(exchange.body, spec.records)
                return index, records if isinstance(records, list) else []
    return None


def _path_pattern(template: str) -> Any:
    """A stream's request path as a pattern over recorded paths (placeholders match one segment)."""
    path = template.split("?", 1)[0]
    if path.startswith(("https://", "http://")):
        path = "/" + path.split("/", 3)[3] if path.count("/") >= 3 else "/"
    parts = _PLACEHOLDER.split(path)
    # A base URL's own path (``/api/1.0``) comes before the stream's: match the stream's path as a suffix.
    return re2.compile(".*" + "[^/]+".join(re2.escape(p) for p in parts))


def _resembles(compiled: list[_Compiled], record: dict[str, Any]) -> int | None:
    best, best_share = None, 0.0
    for index, c in enumerate(compiled):
        wanted = [p for p in c.paths if p]
        if not wanted:
            continue
        share = sum(1 for p in wanted if _present(record, p)[0]) / len(wanted)
        if share > best_share:
            best, best_share = index, share
    return best if best_share >= MIN_SHARE else None


# -- measuring --------------------------------------------------------------------------------------------------


def _measure(definition: Definition, c: _Compiled, records: list[Any], models: dict[str, Any]) -> MappingCoverage:
    m = c.mapping
    report = MappingCoverage(m.schema, m.variant, records=len(records))
    spec = models.get(m.schema)
    outputs: list[dict[str, Any]] = []
    for record in records:
        activation = _activation(definition.id, m, record)
        try:
            if c.filter is not None and c.filter.evaluate(activation) is not True:
                report.filtered += 1
                continue
            mapped = c.map.evaluate(activation) if c.map is not None else record
        except CelError:
            report.rejected += 1
            report.rejects["map_error"] = report.rejects.get("map_error", 0) + 1
            continue
        if not isinstance(mapped, dict):
            report.rejected += 1
            report.rejects["map_not_object"] = report.rejects.get("map_not_object", 0) + 1
            continue
        outputs.append(mapped)
        problem = _validation(spec, mapped)
        if problem is None:
            report.mapped += 1
        else:
            report.rejected += 1
            report.rejects[problem] = report.rejects.get(problem, 0) + 1
    uses = {p: _use(records, p) for p in c.paths}
    written = list(c.reads.fields) if c.reads.literal else sorted({k for o in outputs for k in o})
    allowed = list(spec.allowed) if spec is not None else written
    required = set(spec.required) if spec is not None else set()
    for name in allowed:
        if name not in written:
            report.fields.append(FieldCoverage(name, "not_written", 0, name in required, []))
            continue
        filled = sum(1 for o in outputs if o.get(name) is not None)
        field_paths = sorted(c.reads.fields.get(name, set()), key=dotted)
        report.fields.append(
            FieldCoverage(
                name,
                "filled" if filled else "null",
                filled,
                name in required,
                [uses[p] for p in field_paths if p in uses],
            )
        )
    report.unknown_keys = [k for k in written if k not in allowed]
    # With no record, every read path is "never present": that says nothing the header does not.
    report.never_present = sorted(u.path for p, u in uses.items() if p and u.present == 0) if records else []
    report.unused = _unused(records, c.paths)
    return report


def _activation(definition_id: str, mapping: Mapping, record: Any) -> dict[str, Any]:
    """The CEL variables the ingest pipeline gives a mapping (``ingest.pipeline``), for a dry look."""
    envelope = {
        "tenant_id": "coverage",
        "integration_id": "coverage",
        "definition_id": definition_id,
        "source": "operation",
        "origin": "",
        "schema": mapping.schema,
        "variant": mapping.variant,
        "resource": "",
        "action": "",
        "payload": record,
    }
    return {"envelope": envelope, "variant": mapping.variant, "resource": "", "action": "", "payload": record}


def _validation(spec: Any, mapped: dict[str, Any]) -> str | None:
    """The reject code the ingest type's validation would give, or ``None``."""
    if spec is None:
        return "unknown_schema"
    from pydantic import ValidationError

    from ingest.model_types import ingest_types

    input_type = ingest_types().get(spec.schema)
    if input_type is None:
        return "unknown_schema"
    try:
        input_type.model_validate(mapped)
    except ValidationError:
        return "validation_failed"
    except Exception:  # a validator tripping on an odd value is a validation failure too
        return "validation_failed"
    return None


def _values(value: Any, path: Path) -> Iterator[Any]:
    if not path:
        yield value
        return
    head, rest = path[0], path[1:]
    if head == ITEM:
        if isinstance(value, list):
            for item in value:
                yield from _values(item, rest)
        return
    if isinstance(value, dict) and head in value:
        yield from _values(value[head], rest)


def _present(record: Any, path: Path) -> tuple[bool, bool]:
    values = list(_values(record, path))
    return bool(values), any(v is not None for v in values)


def _use(records: list[Any], path: Path) -> PathUse:
    use = PathUse(dotted(path))
    for record in records:
        present, non_null = _present(record, path)
        use.present += present
        use.non_null += non_null
    return use


def _leaves(value: Any, prefix: Path = ()) -> Iterator[Path]:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from _leaves(item, (*prefix, str(key)))
    elif isinstance(value, list) and any(isinstance(item, dict | list) for item in value):
        for item in value:
            yield from _leaves(item, (*prefix, ITEM))
    else:
        yield prefix


def _unused(records: list[Any], read: set[Path]) -> list[PathUse]:
    counts: dict[Path, int] = {}
    for record in records:
        for leaf in set(_leaves(record)):
            if not any(_covers(r, leaf) for r in read):
                counts[leaf] = counts.get(leaf, 0) + 1
    return [PathUse(dotted(p), n, n) for p, n in sorted(counts.items(), key=lambda kv: dotted(kv[0]))]


def _covers(read: Path, leaf: Path) -> bool:
    """Reading ``read`` uses ``leaf``: it is inside what is read, or the read goes deeper than a null or empty."""
    shorter = min(len(read), len(leaf))
    return read[:shorter] == leaf[:shorter]
