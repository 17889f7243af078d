"""Registration-time checks of map literals against the new internal models."""

from __future__ import annotations

import dataclasses

import pytest

from engine import Mapping
from engine.catalog.registry import Registry
from engine.errors import DefinitionError
from ingest.catalog import catalog
from support.directory import DIRECTORY


def with_membership_map(text: str) -> object:
    mappings = tuple(
        Mapping(m.schema, m.variant, m.filter, text) if m.schema == "directory_membership" else m
        for m in DIRECTORY.mappings
    )
    return dataclasses.replace(DIRECTORY, mappings=mappings)


def test_the_test_directory_registers() -> None:
    Registry().register(DIRECTORY)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"account_external_id": payload.id}', "group_external_id"),
        ('{"account_external_id": payload.id, "group_external_id": payload.g, "account_id": 1}', "account_id"),
        ('{"account_external_id": payload.id, "group_external_id": payload.g, "tenant_id": "x"}', "tenant_id"),
    ],
)
def test_a_map_literal_must_fit_the_model(text: str, field: str) -> None:
    with pytest.raises(DefinitionError) as info:
        Registry().register(with_membership_map(text))  # type: ignore[arg-type]
    assert info.value.rule == "map_fields" and repr(field) in info.value.reason


def test_the_catalog_describes_references_and_keys() -> None:
    membership = catalog()["directory_membership"]
    assert membership.upsert == ("account_external_id", "group_external_id")
    assert [(r.field, r.target, r.into) for r in membership.references] == [
        ("account_external_id", "directory_account", "account_id"),
        ("group_external_id", "directory_group", "group_id"),
    ]
    assert "account_id" not in membership.allowed
    assert membership.topic == "integration.ingest.directory_membership.requested"
    for spec in catalog().values():
        table = spec.model.__table__  # type: ignore[attr-defined]
        unique = {tuple(c.name for c in u.columns) for u in table.constraints if type(u).__name__ == "UniqueConstraint"}
        assert ("tenant_id", "integration_id", *spec.upsert) in unique, spec.schema
