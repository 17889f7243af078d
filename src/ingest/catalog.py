"""The ingest catalog: what each internal model accepts from a mapping, read from its annotations."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from sqlmodel import SQLModel

from engine.errors import ConfigurationError
from ingest.annotations import IngestOptions, field_marker


@dataclass(frozen=True)
class Reference:
    """A mapped field that holds another model's lookup key, resolved at persistence into ``into``."""

    field: str
    target: str
    into: str


@dataclass(frozen=True)
class ModelSpec:
    """The mapping surface of one internal model."""

    schema: str
    model: type[SQLModel]
    allowed: tuple[str, ...]
    required: tuple[str, ...]
    upsert: tuple[str, ...]
    lookup: tuple[str, ...]
    #: Context field name → where its value comes from (``tenant_id``, ``integration_id``, ``definition_id``).
    context: tuple[tuple[str, str], ...]
    stock_persistence: bool
    references: tuple[Reference, ...] = ()

    @property
    def table(self) -> str:
        return str(self.model.__tablename__)

    @property
    def topic(self) -> str:
        """The topic a typed ingest request for this model travels on."""
        return f"integration.ingest.{self.schema}.requested"


def describe(model: type[SQLModel]) -> ModelSpec:
    options: IngestOptions = model.__ingest__  # type: ignore[attr-defined]
    allowed, required, upsert, lookup, context, references = [], [], [], [], [], []
    for column in model.__table__.columns:  # type: ignore[attr-defined]
        marker = field_marker(column.info)
        if marker is None:
            continue
        if marker.context:
            context.append((column.name, marker.context))
            continue
        allowed.append(column.name)
        if marker.upsert or model.model_fields[column.name].is_required():
            required.append(column.name)
        if marker.upsert:
            upsert.append(column.name)
        if marker.lookup:
            lookup.append(column.name)
        if marker.references and marker.resolves_into:
            references.append(Reference(column.name, marker.references, marker.resolves_into))
    return ModelSpec(
        schema=options.schema,
        model=model,
        allowed=tuple(allowed),
        required=tuple(required),
        upsert=tuple(upsert),
        lookup=tuple(lookup),
        context=tuple(context),
        stock_persistence=options.stock_persistence,
        references=tuple(references),
    )


def builtin_catalog() -> dict[str, ModelSpec]:
    """Tether's own models (``src/ingest/models/``), the ones ``scripts/codegen.py`` writes ``generated/`` from."""
    from ingest.models import MODELS

    specs = [describe(m) for m in MODELS]
    return {s.schema: s for s in specs}


@cache
def catalog() -> dict[str, ModelSpec]:
    """Every internal model on the mapping surface, by schema name: the built-in ones, then the host packages'
    (``ingest.hosts``). A host model whose schema or table is already taken stops start-up."""
    from ingest.hosts import host_packages

    specs = builtin_catalog()
    for package in host_packages():
        for model in package.models:
            spec = describe(model)
            _refuse_clash(specs, spec, package.module)
            specs[spec.schema] = spec
    return specs


def _refuse_clash(specs: dict[str, ModelSpec], spec: ModelSpec, module: str) -> None:
    for other in specs.values():
        if other.schema == spec.schema or other.table == spec.table:
            what = f"schema {spec.schema!r}" if other.schema == spec.schema else f"table {spec.table!r}"
            raise ConfigurationError(
                f"host model {_name(spec.model)} (from {module}) has the {what} of {_name(other.model)}; "
                "give it another __ingest__ schema and __tablename__"
            )


def _name(model: type[SQLModel]) -> str:
    return f"{model.__module__}.{model.__qualname__}"
