"""The change feed's write side on both databases: what becomes a change, in which order, and what a mirror
built from the changes alone looks like after upserts, updates and removals."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from engine import Payload
from engine.store.database import Database
from engine.store.tables import ChangeCounter, RecordChange
from ingest.changes import record_changes, record_state, remove_records, table_of
from ingest.pipeline import IngestPipeline
from support.directory import directory_context, user

SCHEMAS = ("directory_account", "directory_group", "directory_membership")


def changes(db: Database, tenant: str = "tenant_1", after: int = 0) -> list[dict[str, Any]]:
    table = RecordChange.__table__  # type: ignore[attr-defined]
    query = select(table).where(table.c.tenant_id == tenant, table.c.seq > after).order_by(table.c.seq)
    with db.engine.connect() as connection:
        return [dict(row) for row in connection.execute(query).mappings()]


def tables(db: Database, tenant: str = "tenant_1") -> dict[tuple[str, int], dict[str, Any]]:
    """Every record of the directory models, keyed as the feed keys them, serialised as the feed serialises them."""
    out = {}
    with db.engine.connect() as connection:
        for schema in SCHEMAS:
            table = table_of(schema)
            for row in connection.execute(select(table).where(table.c.tenant_id == tenant)).mappings():
                out[(schema, row["id"])] = record_state(row)
    return out


def mirror(feed: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    built: dict[tuple[str, int], dict[str, Any]] = {}
    for change in feed:
        key = (change["schema_name"], change["record_id"])
        if change["op"] == "remove":
            built.pop(key, None)
        else:
            built[key] = change["record"]
    return built


def accounts(n: int, start: int = 0, **extra: Any) -> list[Payload]:
    return [Payload("directory_account", user(i, **extra), "user") for i in range(start, start + n)]


def group(gid: str) -> Payload:
    return Payload("directory_group", {"external_id": gid, "name": f"group {gid}"}, "group")


def member(n: int, gid: str) -> Payload:
    return Payload("directory_membership", {"id": user(n)["id"], "groupId": gid, "role": "member"}, "member")


def test_a_sync_produces_its_changes_in_order(pipeline: IngestPipeline, database: Database) -> None:
    result = pipeline.process(directory_context(), [*accounts(3), group("g1"), member(0, "g1"), member(2, "g1")])
    assert result.changes == (1, 6)
    feed = changes(database)
    assert [c["seq"] for c in feed] == [1, 2, 3, 4, 5, 6]
    # Targets of references are flushed first: the group precedes the memberships that point at it.
    assert [c["schema_name"] for c in feed] == ["directory_account"] * 3 + ["directory_group"] + [
        "directory_membership"
    ] * 2
    assert all(c["op"] == "upsert" and c["integration_id"] == "int_1" for c in feed)
    first = feed[0]["record"]
    assert first["external_id"] == "10000000" and first["email"] == "user0@acme.test"
    assert first["id"] == feed[0]["record_id"] and first["tenant_id"] == "tenant_1"
    assert mirror(feed) == tables(database)


def test_a_no_op_upsert_is_no_change_and_an_update_is_one(pipeline: IngestPipeline, database: Database) -> None:
    pipeline.process(directory_context(), accounts(5))
    again = pipeline.process(directory_context(), accounts(5))
    assert again.persisted == 5 and again.changes is None and len(changes(database)) == 5
    with database.engine.connect() as connection:  # the counter is not even touched by a page of no-ops
        assert connection.execute(select(ChangeCounter.last_seq)).scalar_one() == 5  # type: ignore[call-overload]
    edited = accounts(5)
    edited[3] = Payload("directory_account", user(3, primaryEmail="moved@acme.test"), "user")
    updated = pipeline.process(directory_context(), edited)
    assert updated.changes == (6, 6)
    [change] = changes(database, after=5)
    assert change["record"]["email"] == "moved@acme.test" and change["record"]["external_id"] == "10000003"
    assert mirror(changes(database)) == tables(database)


def test_json_fields_that_are_equal_are_no_change(pipeline: IngestPipeline, database: Database) -> None:
    payload = {"external_id": "g1", "name": "g", "attributes": {"b": [1, 2], "a": {"x": None}}}
    pipeline.process(directory_context(), [Payload("directory_group", payload, "group")])
    assert pipeline.process(directory_context(), [Payload("directory_group", payload, "group")]).changes is None
    moved = {**payload, "attributes": {"b": [2, 1], "a": {"x": None}}}
    assert pipeline.process(directory_context(), [Payload("directory_group", moved, "group")]).changes == (2, 2)


def test_removals_are_tombstones_and_take_their_dependents(pipeline: IngestPipeline, database: Database) -> None:
    pipeline.process(directory_context(), [*accounts(3), group("g1"), member(0, "g1"), member(1, "g1")])
    accounts_table = table_of("directory_account")
    with database.engine.begin() as connection:
        removed = remove_records(
            connection, "directory_account", "tenant_1", "int_1", accounts_table.c.external_id == "10000000"
        )
        assert record_changes(connection, "tenant_1", removed) == (7, 8)
    tail = changes(database, after=6)
    assert [(c["schema_name"], c["op"], c["record"]) for c in tail] == [
        ("directory_membership", "remove", None),  # the membership goes first, then the account it points at
        ("directory_account", "remove", None),
    ]
    assert mirror(changes(database)) == tables(database)
    assert len([k for k in tables(database) if k[0] == "directory_membership"]) == 1


def test_remove_unseen_keeps_what_the_listing_saw(pipeline: IngestPipeline, database: Database) -> None:
    ctx = directory_context(snapshot=frozenset({"directory_account"}))
    first = pipeline.process(ctx, [*accounts(4), group("g1"), member(3, "g1")])
    assert first.seen["directory_account"] == {(user(i)["id"],) for i in range(4)}
    assert "directory_group" not in first.seen  # collected only for the declared snapshots
    second = pipeline.process(ctx, accounts(2))
    assert pipeline.remove_unseen(ctx, "directory_account", second.seen["directory_account"]) == 2
    remaining = tables(database)
    assert sorted(r["external_id"] for k, r in remaining.items() if k[0] == "directory_account") == [
        "10000000",
        "10000001",
    ]
    assert not [k for k in remaining if k[0] == "directory_membership"]  # account 3's membership went with it
    assert mirror(changes(database)) == remaining
    assert pipeline.remove_unseen(ctx, "directory_account", second.seen["directory_account"]) == 0


def test_another_integration_and_tenant_are_untouched(pipeline: IngestPipeline, database: Database) -> None:
    pipeline.process(directory_context(), accounts(2))
    pipeline.process(directory_context(integration="int_2"), accounts(2))
    pipeline.process(directory_context(tenant="tenant_2"), accounts(3))
    ctx = directory_context(snapshot=frozenset({"directory_account"}))
    assert pipeline.remove_unseen(ctx, "directory_account", set()) == 2
    assert [c["seq"] for c in changes(database, "tenant_2")] == [1, 2, 3]  # sequences are per tenant
    assert len(tables(database)) == 2 and len(tables(database, "tenant_2")) == 3
    assert mirror(changes(database)) == tables(database)


def test_a_pipeline_without_changes_records_none(registry: Any, database: Database) -> None:
    plain = IngestPipeline(registry, database, changes=False)
    result = plain.process(directory_context(), accounts(3))
    assert result.persisted == 3 and result.changes is None and changes(database) == []
