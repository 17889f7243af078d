"""Annotations that put an internal model on the integration-mapping surface.

A model opts in with ``__ingest__ = IngestOptions(schema=...)``; each field says its role with one of the field
helpers below. Unmarked fields (primary keys, timestamps) are excluded: a mapping can never write them. The ingest
catalog and ``scripts/codegen.py`` read these annotations; nothing else should.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Index
from sqlmodel import Field

ContextSource = Literal["tenant_id", "integration_id", "definition_id"]

_KEY = "tether_ingest"


@dataclass(frozen=True)
class IngestOptions:
    """Model-level opt-in. ``schema`` is the name mappings and operations use (``"asset"``)."""

    schema: str
    #: Ask for the stock batched upsert instead of hand-written persistence.
    stock_persistence: bool = True


@dataclass(frozen=True)
class FieldMarker:
    """How one column takes part in ingest."""

    upsert: bool = False
    lookup: bool = False
    #: Filled from the integration context instead of the payload.
    context: ContextSource | None = None
    #: For a reference: the schema whose lookup key this field holds, and the column that receives that row's ID.
    references: str | None = None
    resolves_into: str | None = None


def mapped(default: Any = ..., *, upsert: bool = False, lookup: bool = False, **kwargs: Any) -> Any:
    """A field a mapping may write (``upsert``/``lookup`` also make it a key)."""
    return _field(FieldMarker(upsert=upsert, lookup=lookup), default, **kwargs)


def upsert_key(*, lookup: bool = False, **kwargs: Any) -> Any:
    """A field a mapping must write; with the context fields it identifies the row an upsert replaces."""
    return _field(FieldMarker(upsert=True, lookup=lookup), ..., **kwargs)


def lookup_key(default: Any = ..., **kwargs: Any) -> Any:
    """A mapped field other models use to reference this one (resolved in batch at persistence)."""
    return _field(FieldMarker(lookup=True), default, **kwargs)


def reference(target: str, into: str, *, upsert: bool = False, **kwargs: Any) -> Any:
    """A mapped field holding another model's lookup key; persistence resolves it (in batch) into column ``into``.

    A record whose reference matches no row of ``target`` in the same integration is rejected, never dropped.
    """
    return _field(FieldMarker(upsert=upsert, references=target, resolves_into=into), ..., **kwargs)


def from_context(source: ContextSource, **kwargs: Any) -> Any:
    """A field filled from the integration context, never from the payload."""
    return _field(FieldMarker(context=source), ..., **kwargs)


def field_marker(column_info: dict[str, Any]) -> FieldMarker | None:
    """The marker a column carries (``None``: excluded from the mapping surface)."""
    return column_info.get(_KEY)


def _field(marker: FieldMarker, default: Any, **kwargs: Any) -> Any:
    # The marker rides on SQLAlchemy's Column.info, the documented place for user metadata on a column.
    column_kwargs = dict(kwargs.pop("sa_column_kwargs", None) or {})
    column_kwargs["info"] = {**(column_kwargs.get("info") or {}), _KEY: marker}
    return Field(default=default, sa_column_kwargs=column_kwargs, **kwargs)


def record_indexes(table: str) -> tuple[Index, Index]:
    """The indexes the records API (``ingest.records``) pages by: ``(tenant_id, id)`` and ``(integration_id, id)``.

    Pages are keyset pages in ``id`` order within a tenant or an integration; each serves one in O(page). Put both in
    every model's ``__table_args__`` (they replace single-column indexes on ``tenant_id`` and ``integration_id``).
    """
    return (
        Index(f"ix_{table}_tenant_id_id", "tenant_id", "id"),
        Index(f"ix_{table}_integration_id_id", "integration_id", "id"),
    )
