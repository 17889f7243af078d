"""Provider deletes (``Payload(remove=True)``) on both databases: the record goes with the records referencing it,
its tombstones are written in the same call's transaction, in the payloads' order, and only the upsert keys need to
come out of the mapping (a delete that carries only an ID has a mapping of its own variant that maps just that)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import select

from engine import Emits, Payload
from engine.catalog.registry import Registry
from engine.store.database import Database
from engine.store.tables import IngestReject
from ingest.changes import table_of
from ingest.pipeline import IngestContext, IngestPipeline, python_mapping
from support.directory import DIRECTORY_EMITS, directory_context, user

from .test_changes import accounts, changes, group, member, mirror, tables

#: A delete notification carrying only the user's ID, and the mapping of its variant: the upsert key alone.
ID_ONLY = ("directory_test", "directory_account", "deleted_user")


@pytest.fixture
def pipeline(registry: Registry, database: Database) -> IngestPipeline:
    only_id = python_mapping("directory_account", "deleted_user", map=lambda a: {"external_id": a["payload"]["id"]})
    return IngestPipeline(registry, database, batch_size=50, mappings={ID_ONLY: only_id})


def ctx() -> IngestContext:
    return IngestContext(
        "tenant_1", "int_1", "directory_test", emits=(*DIRECTORY_EMITS, Emits("directory_account", "deleted_user"))
    )


def gone(n: int, **extra: Any) -> Payload:
    """The provider's delete of user ``n``, carrying the whole user (as the sandbox's ``record.deleted`` does)."""
    return Payload("directory_account", user(n, **extra), "user", remove=True)


def gone_by_id(data: dict[str, Any]) -> Payload:
    return Payload("directory_account", data, "deleted_user", remove=True)


def test_a_delete_removes_the_record_and_its_dependents_with_tombstones(
    pipeline: IngestPipeline, database: Database
) -> None:
    pipeline.process(directory_context(), [*accounts(3), group("g1"), member(0, "g1"), member(1, "g1")])
    result = pipeline.process(directory_context(), [gone(0)])
    assert (result.received, result.removed, result.persisted, result.rejected) == (1, 1, 0, 0)
    assert result.removed_by_schema == {"directory_account": 1} and result.changes == (7, 8)
    tail = changes(database, after=6)
    assert [(c["schema_name"], c["op"], c["record"]) for c in tail] == [
        ("directory_membership", "remove", None),
        ("directory_account", "remove", None),
    ]
    held = tables(database)
    assert user(0)["id"] not in {r["external_id"] for k, r in held.items() if k[0] == "directory_account"}
    assert mirror(changes(database)) == held


def test_a_delete_of_a_record_not_held_changes_nothing(pipeline: IngestPipeline, database: Database) -> None:
    pipeline.process(directory_context(), accounts(2))
    result = pipeline.process(directory_context(), [gone(7)])
    assert result.removed == 1 and result.removed_by_schema == {} and result.changes is None
    assert len(changes(database)) == 2


def test_upsert_then_delete_in_one_page_ends_deleted_and_delete_then_upsert_ends_present(
    pipeline: IngestPipeline, database: Database
) -> None:
    result = pipeline.process(directory_context(), [*accounts(2), gone(1), *accounts(1, start=5), gone(5)])
    assert (result.persisted, result.removed) == (3, 2)
    held = {r["external_id"] for k, r in tables(database).items() if k[0] == "directory_account"}
    assert held == {user(0)["id"]}
    assert [c["op"] for c in changes(database)] == ["upsert", "upsert", "remove", "upsert", "remove"]
    pipeline.process(directory_context(), [gone(0), *accounts(1)])
    assert {r["external_id"] for k, r in tables(database).items() if k[0] == "directory_account"} == {user(0)["id"]}
    assert mirror(changes(database)) == tables(database)


def test_a_delete_is_scoped_to_its_integration(pipeline: IngestPipeline, database: Database) -> None:
    pipeline.process(directory_context(), accounts(1))
    pipeline.process(directory_context(integration="int_2"), accounts(1))
    pipeline.process(directory_context(tenant="tenant_2"), accounts(1))
    pipeline.process(directory_context(), [gone(0)])
    assert len([k for k in tables(database, "tenant_2") if k[0] == "directory_account"]) == 1
    with database.engine.connect() as connection:
        table = table_of("directory_account")
        left = connection.execute(select(table.c.integration_id).where(table.c.tenant_id == "tenant_1")).all()
    assert [row[0] for row in left] == ["int_2"]


def test_a_delete_carrying_only_the_id_needs_only_the_key_mapped(pipeline: IngestPipeline, database: Database) -> None:
    pipeline.process(ctx(), [*accounts(2), group("g1"), member(1, "g1")])
    result = pipeline.process(ctx(), [gone_by_id({"id": user(1)["id"]})])
    assert result.removed_by_schema == {"directory_account": 1} and result.rejected == 0
    assert {r["external_id"] for k, r in tables(database).items() if k[0] == "directory_account"} == {user(0)["id"]}
    assert not [k for k in tables(database) if k[0] == "directory_membership"]
    assert mirror(changes(database)) == tables(database)


@pytest.mark.parametrize(
    ("data", "code"),
    [({}, "map_error"), ({"id": ["not", "an", "id"]}, "validation_failed")],
)
def test_a_delete_without_its_key_is_rejected_with_the_reason(
    pipeline: IngestPipeline, database: Database, data: dict[str, Any], code: str
) -> None:
    pipeline.process(directory_context(), accounts(1))
    result = pipeline.process(ctx(), [gone_by_id(data)])
    assert (result.removed, result.rejected) == (0, 1) and result.rejects[0].reason_code == code
    with database.session() as session:
        (row,) = session.exec(select(IngestReject)).all()
    assert row.reason_code == code and row.record == data
    assert len([k for k in tables(database) if k[0] == "directory_account"]) == 1


def test_the_filters_apply_to_a_delete(pipeline: IngestPipeline, database: Database) -> None:
    pipeline.process(directory_context(), accounts(1))
    bots = pipeline.process(directory_context(), [gone(0, isBot=True)])  # the definition's filter drops bots
    assert (bots.filtered, bots.removed) == (1, 0)
    assert len([k for k in tables(database) if k[0] == "directory_account"]) == 1
