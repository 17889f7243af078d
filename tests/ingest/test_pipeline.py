"""The ingest path against both databases: persistence, idempotency, tenant isolation, rejects, lookups, runs."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import select

from engine import Emits, Payload
from engine.catalog.registry import Registry
from engine.errors import CelError
from engine.store.database import Database
from engine.store.tables import IngestReject, Integration, Run
from ingest.models import DirectoryAccount, DirectoryGroup, DirectoryMembership
from ingest.pipeline import (
    IngestContext,
    IngestPipeline,
    IntegrationFilterError,
    compile_integration_filter,
    python_mapping,
)
from support.directory import directory_context, user


def accounts(db: Database, integration: str | None = None) -> list[DirectoryAccount]:
    with db.session() as session:
        query = select(DirectoryAccount).order_by(DirectoryAccount.external_id)
        if integration:
            query = query.where(DirectoryAccount.integration_id == integration)
        return list(session.exec(query))


def rejects(db: Database) -> list[IngestReject]:
    with db.session() as session:
        return list(session.exec(select(IngestReject).order_by(IngestReject.position)))


def page(n: int, start: int = 0) -> list[Payload]:
    return [Payload("directory_account", user(i), "user") for i in range(start, start + n)]


def test_a_page_is_persisted_with_its_context(pipeline: IngestPipeline, database: Database) -> None:
    result = pipeline.process(directory_context(), page(120))  # more than one batch of 50
    assert (result.received, result.filtered, result.persisted, result.rejected) == (120, 0, 120, 0)
    rows = accounts(database)
    assert len(rows) == 120
    first = rows[0]
    assert (first.tenant_id, first.integration_id, first.definition_id) == ("tenant_1", "int_1", "directory_test")
    assert first.external_id == "10000000" and first.email == "user0@acme.test" and first.status == "suspended"
    assert first.last_login_at is not None and first.last_login_at.tzinfo is not None


def test_reingesting_a_page_is_idempotent(pipeline: IngestPipeline, database: Database) -> None:
    pipeline.process(directory_context(), page(60))
    before = {a.external_id: a.id for a in accounts(database)}
    changed = [Payload("directory_account", user(i, primaryEmail=f"new{i}@acme.test"), "user") for i in range(60)]
    result = pipeline.process(directory_context(), changed)
    assert result.persisted == 60
    after = accounts(database)
    assert {a.external_id: a.id for a in after} == before  # updated in place, same rows
    assert all(a.email == f"new{int(a.external_id) - 10000000}@acme.test" for a in after)
    pipeline.process(directory_context(), changed)
    assert len(accounts(database)) == 60


def test_duplicates_inside_one_page_keep_the_last(pipeline: IngestPipeline, database: Database) -> None:
    payloads = [
        Payload("directory_account", user(1, primaryEmail="first@acme.test"), "user"),
        Payload("directory_account", user(1, primaryEmail="last@acme.test"), "user"),
    ]
    assert pipeline.process(directory_context(), payloads).persisted == 2
    [row] = accounts(database)
    assert row.email == "last@acme.test"


def test_two_integrations_never_overwrite_each_other(pipeline: IngestPipeline, database: Database) -> None:
    pipeline.process(directory_context("tenant_1", "int_a"), page(10))
    renamed = [Payload("directory_account", user(i, primaryEmail=f"b{i}@other.test"), "user") for i in range(10)]
    pipeline.process(directory_context("tenant_2", "int_b"), renamed)
    a, b = accounts(database, "int_a"), accounts(database, "int_b")
    assert len(a) == len(b) == 10
    assert all(x.email.endswith("@acme.test") and x.tenant_id == "tenant_1" for x in a)  # type: ignore[union-attr]
    assert all(x.email.endswith("@other.test") and x.tenant_id == "tenant_2" for x in b)  # type: ignore[union-attr]


def test_memberships_resolve_accounts_and_groups_in_batch(pipeline: IngestPipeline, database: Database) -> None:
    ctx = directory_context()
    payloads = [
        # Memberships first in the page: the targets are still persisted before them.
        Payload("directory_membership", {"id": "10000001", "groupId": "eng", "role": "MEMBER"}, "member"),
        Payload("directory_membership", {"id": "10000002", "groupId": "eng", "role": "OWNER"}, "member"),
        Payload("directory_membership", {"id": "10009999", "groupId": "eng", "role": "MEMBER"}, "member"),
        Payload("directory_membership", {"id": "10000001", "groupId": "nope", "role": "MEMBER"}, "member"),
        *page(3),
        Payload("directory_group", {"external_id": "eng", "name": "Engineering"}, "group"),
    ]
    result = pipeline.process(ctx, payloads)
    assert (result.persisted, result.rejected) == (6, 2)
    assert {(r.position, r.reason_code) for r in result.rejects} == {(2, "lookup_unresolved"), (3, "lookup_unresolved")}
    with database.session() as session:
        ids = {a.external_id: a.id for a in session.exec(select(DirectoryAccount))}
        [group] = session.exec(select(DirectoryGroup))
        members = list(session.exec(select(DirectoryMembership).order_by(DirectoryMembership.account_external_id)))
    assert [(m.account_id, m.group_id, m.role) for m in members] == [
        (ids["10000001"], group.id, "MEMBER"),
        (ids["10000002"], group.id, "OWNER"),
    ]
    stored = rejects(database)
    assert stored[0].reason == "account_external_id matches no directory_account of this integration"
    assert stored[1].reason == "group_external_id matches no directory_group of this integration"
    # Another integration's account with the same external ID is not a match.
    other = directory_context("tenant_2", "int_2")
    result = pipeline.process(other, [Payload("directory_group", {"external_id": "eng", "name": "E"}, "group")])
    member = Payload("directory_membership", {"id": "10000001", "groupId": "eng", "role": None}, "member")
    assert pipeline.process(other, [member]).rejects[0].reason_code == "lookup_unresolved"


def test_rejects_carry_reason_position_and_record(pipeline: IngestPipeline, database: Database) -> None:
    payloads = [
        Payload("directory_account", user(1), "user"),
        Payload("directory_account", {"primaryEmail": "x@acme.test"}, "user"),  # no id: the map fails
        Payload("directory_account", user(2, isBot="yes"), "user"),  # filter: !"yes" is an error
        Payload("directory_group", {"name": "no key"}, "group"),  # validation: external_id missing
        Payload("directory_group", ["not", "an", "object"], "group"),  # empty map on a list
        Payload("finding", {"external_id": "f"}, ""),  # not declared by the source
        Payload("directory_account", user(3), "admin"),  # declared nowhere
    ]
    result = pipeline.process(directory_context(run_id=None, delivery_id="d1"), payloads, start_position=100)
    assert (result.persisted, result.rejected) == (1, 6)
    stored = rejects(database)
    assert [(r.position, r.reason_code) for r in stored] == [
        (101, "map_error"),
        (102, "filter_error"),
        (103, "validation_failed"),
        (104, "map_not_object"),
        (105, "undeclared_schema"),
        (106, "undeclared_schema"),
    ]
    assert "id" in stored[0].reason
    assert stored[2].reason == "external_id: Field required"
    assert stored[0].record == {"primaryEmail": "x@acme.test"}
    assert stored[3].record == ["not", "an", "object"]
    assert all(r.integration_id == "int_1" and r.delivery_id == "d1" for r in stored)
    assert stored[4].schema_name == "finding"


def test_a_filter_that_is_not_boolean_is_a_reject(registry: Registry, database: Database) -> None:
    mapping = python_mapping("directory_account", "user", filter=lambda a: "yes", map=lambda a: a["payload"])
    pipeline = IngestPipeline(registry, database, mappings={("directory_test", "directory_account", "user"): mapping})
    result = pipeline.process(directory_context(), [Payload("directory_account", {"external_id": "1"}, "user")])
    assert result.rejects[0].reason_code == "filter_not_boolean"
    assert "a string" in result.rejects[0].reason


def test_the_integration_filter_runs_before_the_definition(pipeline: IngestPipeline, database: Database) -> None:
    scoped = compile_integration_filter('payload.primaryEmail.endsWith("@acme.test") && payload.orgUnitPath == "/"')
    payloads = [*page(3), Payload("directory_account", user(9, primaryEmail="x@elsewhere.test"), "user")]
    result = pipeline.process(directory_context(integration_filter=scoped), payloads)
    assert (result.filtered, result.persisted) == (1, 3)
    broken = compile_integration_filter("payload.missing == 1")
    result = pipeline.process(directory_context(integration_filter=broken), page(1))
    assert result.rejects[0].reason_code == "filter_error"
    assert result.rejects[0].reason.startswith("integration filter:")


def test_integration_filters_compile_once_and_refuse_bad_text() -> None:
    assert compile_integration_filter("") is None and compile_integration_filter("  ") is None
    assert compile_integration_filter('action != "x"') is compile_integration_filter('action != "x"')
    with pytest.raises(IntegrationFilterError) as info:
        compile_integration_filter("payload.(")
    assert info.value.code == "invalid_integration_filter" and "does not compile" in info.value.message
    assert not isinstance(info.value, CelError)


def test_counts_are_added_to_the_run(pipeline: IngestPipeline, database: Database) -> None:
    with database.session() as session:
        integration = Integration(tenant_id="tenant_1", owner_id="u1", definition_id="directory_test")
        session.add(integration)
        session.flush()
        run = Run(integration_id=integration.id, tenant_id="tenant_1", operation="DirectorySync", trigger="manual")
        session.add(run)
    ctx = directory_context(integration=integration.id, run_id=run.id)
    bad = Payload("directory_group", {"name": "no key"}, "group")
    bot = Payload("directory_account", user(5, isBot=True), "user")
    pipeline.process(ctx, [*page(4), bad, bot])
    pipeline.process(ctx, [*page(2, start=10), bad], start_position=6)
    with database.session() as session:
        stored = session.get(Run, run.id)
        assert stored is not None
        assert (stored.payloads_out, stored.records_ingested, stored.records_filtered, stored.records_rejected) == (
            9,
            6,
            1,
            2,
        )
        positions = [r.position for r in session.exec(select(IngestReject).where(IngestReject.run_id == run.id))]
    assert sorted(positions) == [4, 8]


def test_a_row_the_database_refuses_is_rejected_alone(pipeline: IngestPipeline, database: Database) -> None:
    # PostgreSQL text cannot hold NUL; SQLite stores it. Either way the rest of the batch is persisted.
    payloads = [*page(3), Payload("directory_account", user(7, primaryEmail="nul\x00@acme.test"), "user")]
    result = pipeline.process(directory_context(), payloads)
    if database.dialect == "postgresql":
        assert (result.persisted, result.rejected) == (3, 1)
        assert result.rejects[0].reason_code == "persist_failed" and result.rejects[0].position == 3
        assert "nul" not in result.rejects[0].reason
    else:
        assert (result.persisted, result.rejected) == (4, 0)
    assert len(accounts(database)) == result.persisted


def test_the_github_definition_lands_assets(pipeline: IngestPipeline, database: Database) -> None:
    import json
    from pathlib import Path

    from ingest.models import Asset

    fixture = Path(__file__).parents[1] / "fixtures" / "github_app" / "installation_repositories_page1.json"
    repos: list[dict[str, Any]] = json.loads(fixture.read_text())["body"]["repositories"]
    ctx = IngestContext("tenant_1", "int_gh", "github_app", emits=[Emits("asset", "repository")])
    result = pipeline.process(ctx, [Payload("asset", r, "repository") for r in repos])
    assert result.persisted == len(repos)
    with database.session() as session:
        names = sorted(a.name for a in session.exec(select(Asset)))
    assert names == sorted(r["full_name"] for r in repos)
