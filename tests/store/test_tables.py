"""The engine tables on both databases: migrations, constraints, round trips."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel, select

from engine.store.database import Database
from engine.store.tables import (
    AuditEvent,
    AuthFlow,
    Credential,
    IngestReject,
    Integration,
    IntegrationStatus,
    Run,
    RunStatus,
    WebhookDelivery,
    WebhookEndpoint,
)

ENGINE_TABLES = {
    "integration",
    "credential",
    "auth_flow",
    "webhook_endpoint",
    "webhook_delivery",
    "run",
    "ingest_reject",
    "audit_event",
}


def make_integration(db: Database, tenant: str = "t1", owner: str = "u1", definition: str = "github_app") -> str:
    with db.session() as session:
        integration = Integration(tenant_id=tenant, owner_id=owner, definition_id=definition)
        session.add(integration)
    return integration.id


def test_migrations_create_every_table(database: Database) -> None:
    tables = set(inspect(database.engine).get_table_names())
    assert tables >= ENGINE_TABLES
    assert "asset" in tables
    assert database.is_up_to_date()


def test_migrations_match_the_models(database: Database) -> None:
    """A model change without a migration shows up here as a diff."""
    with database.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), SQLModel.metadata)
    assert diff == []


def test_downgrade_to_base_and_back(database: Database) -> None:
    database.downgrade("base")
    assert not ENGINE_TABLES & set(inspect(database.engine).get_table_names())
    database.upgrade()
    assert set(inspect(database.engine).get_table_names()) >= ENGINE_TABLES


def test_one_integration_per_tenant_owner_definition(database: Database) -> None:
    make_integration(database)
    make_integration(database, owner="u2")
    make_integration(database, tenant="t2")
    with pytest.raises(IntegrityError):
        make_integration(database)


def test_one_credential_per_integration_and_slot(database: Database) -> None:
    integration_id = make_integration(database)
    with database.session() as session:
        session.add(Credential(integration_id=integration_id, slot="Token", key_id="k1", ciphertext=b"\x00\x01"))
        session.add(Credential(integration_id=integration_id, slot="Other", key_id="k1", ciphertext=b"\x02"))
    with pytest.raises(IntegrityError), database.session() as session:
        session.add(Credential(integration_id=integration_id, slot="Token", key_id="k2", ciphertext=b"\x03"))


def test_one_delivery_id_per_endpoint(database: Database) -> None:
    integration_id = make_integration(database)
    with database.session() as session:
        first = WebhookEndpoint(integration_id=integration_id, webhook="a")
        second = WebhookEndpoint(integration_id=integration_id, webhook="b")
        session.add_all([first, second])
    with database.session() as session:
        session.add(WebhookDelivery(endpoint_id=first.id, delivery_id="d-1"))
        session.add(WebhookDelivery(endpoint_id=second.id, delivery_id="d-1"))
    with pytest.raises(IntegrityError), database.session() as session:
        session.add(WebhookDelivery(endpoint_id=first.id, delivery_id="d-1"))


def test_concurrent_duplicate_deliveries_insert_once(database: Database) -> None:
    integration_id = make_integration(database)
    with database.session() as session:
        endpoint = WebhookEndpoint(integration_id=integration_id, webhook="a")
        session.add(endpoint)
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def deliver() -> None:
        barrier.wait()
        try:
            with database.session() as session:
                session.add(WebhookDelivery(endpoint_id=endpoint.id, delivery_id="same"))
            outcomes.append("inserted")
        except IntegrityError:
            outcomes.append("duplicate")

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["duplicate"] * 7 + ["inserted"]


def test_webhook_tokens_are_unique_and_unguessable(database: Database) -> None:
    integration_id = make_integration(database)
    with database.session() as session:
        endpoints = [WebhookEndpoint(integration_id=integration_id, webhook=f"w{i}") for i in range(3)]
        session.add_all(endpoints)
    tokens = {e.token for e in endpoints}
    assert len(tokens) == 3 and all(len(t) >= 40 for t in tokens)
    with pytest.raises(IntegrityError), database.session() as session:
        session.add(WebhookEndpoint(integration_id=integration_id, webhook="w9", token=endpoints[0].token))


def test_auth_flow_state_is_unique(database: Database) -> None:
    integration_id = make_integration(database)
    expires = datetime.now(UTC) + timedelta(minutes=10)
    common = dict(
        tenant_id="t1",
        owner_id="u1",
        integration_id=integration_id,
        definition_id="github_app",
        connection="AppInstallation",
        session_hash="s" * 64,
        expires_at=expires,
    )
    with database.session() as session:
        session.add(AuthFlow(state_hash="a" * 64, **common))
    with pytest.raises(IntegrityError), database.session() as session:
        session.add(AuthFlow(state_hash="a" * 64, **common))


def test_deleting_an_integration_cascades(database: Database) -> None:
    integration_id = make_integration(database)
    with database.session() as session:
        session.add(Credential(integration_id=integration_id, slot="Token", key_id="k1", ciphertext=b"x"))
        endpoint = WebhookEndpoint(integration_id=integration_id, webhook="a")
        session.add(endpoint)
        session.flush()
        session.add(WebhookDelivery(endpoint_id=endpoint.id, delivery_id="d"))
        run = Run(integration_id=integration_id, tenant_id="t1", operation="RepositorySync", trigger="api")
        session.add(run)
        session.flush()
        session.add(
            IngestReject(
                run_id=run.id,
                integration_id=integration_id,
                position=3,
                schema_name="asset",
                reason_code="validation",
                reason="name: missing",
            )
        )
    with database.session() as session:
        session.delete(session.get(Integration, integration_id))
    with database.session() as session:
        for table in (Credential, WebhookEndpoint, WebhookDelivery, Run, IngestReject):
            assert session.exec(select(table)).all() == [], table.__name__


def test_round_trips_json_bytes_and_aware_datetimes(database: Database) -> None:
    integration_id = make_integration(database)
    started = datetime(2026, 11, 23, 10, 30, tzinfo=UTC)
    with database.session() as session:
        integration = session.get(Integration, integration_id)
        assert integration is not None
        integration.user_input = {"org": "acme", "repos": ["a", "b"], "nested": {"n": 1}}
        integration.status = IntegrationStatus.connected
        session.add(
            Credential(
                integration_id=integration_id,
                slot="Token",
                key_id="k1",
                ciphertext=bytes(range(256)),
                scopes=["repo", "read:org"],
                expires_at=started,
            )
        )
        session.add(
            Run(
                id="r1",
                integration_id=integration_id,
                tenant_id="t1",
                operation="Sync",
                trigger="api",
                status=RunStatus.running,
                started_at=started,
                result={"ok": True, "n": [1, 2]},
            )
        )
        session.add(
            AuditEvent(
                tenant_id="t1",
                integration_id=integration_id,
                actor="u1",
                action="connect",
                detail={"connection": "AppInstallation"},
            )
        )
    with database.session() as session:
        integration = session.get(Integration, integration_id)
        credential = session.exec(select(Credential)).one()
        run = session.get(Run, "r1")
        audit = session.exec(select(AuditEvent)).one()
    assert integration is not None and run is not None
    assert integration.user_input == {"org": "acme", "repos": ["a", "b"], "nested": {"n": 1}}
    assert integration.status == "connected"
    assert credential.ciphertext == bytes(range(256)) and credential.scopes == ["repo", "read:org"]
    assert credential.expires_at == started and credential.expires_at.tzinfo is not None
    assert run.started_at == started and run.result == {"ok": True, "n": [1, 2]}
    assert audit.detail == {"connection": "AppInstallation"}
