"""Provider deletes as payloads (``REMOVE``): the row with the mapped upsert keys goes, with the rows referencing it
and their ``remove`` changes, in the page's transaction, on both databases."""

from __future__ import annotations

from typing import Any

from sqlmodel import select

from engine import REMOVE, Payload
from engine.store.database import Database
from engine.store.tables import RecordChange
from ingest.models import DirectoryAccount, DirectoryMembership
from ingest.pipeline import IngestPipeline
from support.directory import directory_context, user

GROUP = {"external_id": "g1", "name": "Engineering"}


def member(n: int) -> dict[str, Any]:
    return {"id": user(n)["id"], "groupId": "g1", "role": "member"}


def rows(database: Database, model: type[Any], integration: str) -> list[Any]:
    with database.session() as session:
        return list(session.exec(select(model).where(model.integration_id == integration)))


def ops(database: Database, integration: str) -> list[tuple[str, str]]:
    with database.session() as session:
        changes = session.exec(
            select(RecordChange).where(RecordChange.integration_id == integration).order_by(RecordChange.seq)
        )  # type: ignore[arg-type]
        return [(c.schema_name, c.op) for c in changes]


def test_a_removal_takes_the_row_and_what_references_it(pipeline: IngestPipeline, database: Database) -> None:
    ctx = directory_context(integration="int_remove_1")
    first = pipeline.process(
        ctx,
        [
            Payload("directory_account", user(1), "user"),
            Payload("directory_account", user(2), "user"),
            Payload("directory_group", GROUP, "group"),
            Payload("directory_membership", member(1), "member"),
            Payload("directory_membership", member(2), "member"),
        ],
    )
    assert first.persisted == 5
    result = pipeline.process(ctx, [Payload("directory_account", user(1), "user", action=REMOVE)])
    assert (result.received, result.removed, result.persisted, result.rejected) == (1, 1, 0, 0)
    assert [a.external_id for a in rows(database, DirectoryAccount, "int_remove_1")] == [user(2)["id"]]
    assert [m.account_external_id for m in rows(database, DirectoryMembership, "int_remove_1")] == [user(2)["id"]]
    # The membership went first (it referenced the account), both with their remove changes.
    assert ops(database, "int_remove_1")[-2:] == [("directory_membership", "remove"), ("directory_account", "remove")]


def test_a_record_created_and_removed_in_one_page_ends_removed(pipeline: IngestPipeline, database: Database) -> None:
    ctx = directory_context(integration="int_remove_2")
    result = pipeline.process(
        ctx,
        [
            Payload("directory_account", user(3), "user"),
            Payload("directory_account", user(4), "user"),
            Payload("directory_account", user(3), "user", action=REMOVE),
        ],
    )
    assert (result.persisted, result.removed) == (2, 1)
    assert [a.external_id for a in rows(database, DirectoryAccount, "int_remove_2")] == [user(4)["id"]]


def test_removing_what_is_not_there_changes_nothing(pipeline: IngestPipeline, database: Database) -> None:
    ctx = directory_context(integration="int_remove_3")
    result = pipeline.process(ctx, [Payload("directory_account", user(5), "user", action=REMOVE)])
    assert (result.removed, result.rejected, result.changes) == (1, 0, None)
    assert ops(database, "int_remove_3") == []


def test_a_removal_without_its_keys_is_rejected_and_filters_still_apply(
    pipeline: IngestPipeline, database: Database
) -> None:
    ctx = directory_context(integration="int_remove_4")
    pipeline.process(ctx, [Payload("directory_account", user(6), "user")])
    result = pipeline.process(
        ctx,
        [
            Payload("directory_account", {**user(6), "id": ""}, "user", action=REMOVE),  # no key: rejected
            Payload("directory_account", {**user(6), "isBot": True}, "user", action=REMOVE),  # filtered: untouched
        ],
    )
    assert (result.rejected, result.filtered, result.removed) == (1, 1, 0)
    assert result.rejects[0].reason_code == "validation_failed"
    assert [a.external_id for a in rows(database, DirectoryAccount, "int_remove_4")] == [user(6)["id"]]
    assert result.received == result.filtered + result.persisted + result.rejected + result.removed
