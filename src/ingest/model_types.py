"""Ingest types and routes built from the model classes at start-up, for models ``generated/`` does not cover.

``generated/ingest_types.py`` and ``generated/routing.py`` are written by ``scripts/codegen.py`` for the built-in
models: importable, typed names for definitions and tests. A host package's models (``ingest.hosts``) get the same
types built here from the same annotations, so a host never runs Tether's codegen (docs/decisions.md).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import Any, ClassVar

from engine.errors import ConfigurationError
from ingest.catalog import ModelSpec, catalog
from ingest.fields import IngestInput, UtcDatetime
from ingest.persistence.stock import PersistBatch, PersistRejection, stock_upsert

Persist = Callable[[PersistBatch], list[PersistRejection]]


def field_type(annotation: Any) -> Any:
    """The model field's type as the ingest type declares it: timestamps become ``UtcDatetime`` (as codegen does)."""
    if annotation is datetime:
        return UtcDatetime
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = tuple(field_type(a) for a in typing.get_args(annotation))
        return typing.Union[args]  # noqa: UP007  (a runtime-built union of computed members)
    return annotation


def input_type(spec: ModelSpec) -> type[IngestInput]:
    """``<Model>Input`` for one model: the allowed fields, required ones without a default, like codegen writes."""
    fields = spec.model.model_fields
    annotations: dict[str, Any] = {"schema_name": ClassVar[str], "topic": ClassVar[str]}
    namespace: dict[str, Any] = {"schema_name": spec.schema, "topic": spec.topic, "__module__": spec.model.__module__}
    for name in spec.allowed:
        annotation = field_type(fields[name].annotation)
        if name in spec.required:
            annotations[name] = annotation
        else:
            annotations[name] = annotation | None
            namespace[name] = None
    namespace["__annotations__"] = annotations
    name = "".join(part.capitalize() for part in spec.schema.split("_")) + "Input"
    return type(name, (IngestInput,), namespace)


@cache
def ingest_types() -> dict[str, type[IngestInput]]:
    """Schema → ingest type: the generated ones, plus one built per host model."""
    from generated.ingest_types import INPUT_TYPES

    built = {schema: input_type(spec) for schema, spec in catalog().items() if schema not in INPUT_TYPES}
    return {**INPUT_TYPES, **built}


@cache
def ingest_routes() -> dict[str, Persist]:
    """Schema → persist function: the generated routing, plus the stock upsert (or the package's ``PERSISTENCE``
    entry) per host model."""
    from generated.routing import ROUTES

    from ingest.hosts import host_packages

    routes: dict[str, Persist] = dict(ROUTES)
    for package in host_packages():
        for model in package.models:
            schema = model.__ingest__.schema  # type: ignore[attr-defined]
            if schema in package.persistence:
                routes[schema] = package.persistence[schema]
            elif model.__ingest__.stock_persistence:  # type: ignore[attr-defined]
                routes[schema] = stock_upsert
            else:
                raise ConfigurationError(
                    f"{package.module}: {schema!r} asks for its own persistence; put it in the module's PERSISTENCE"
                )
    return routes
