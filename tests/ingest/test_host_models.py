"""Models of your own (issue 19): a host package's ingest models join the catalog, migrate on their own Alembic
branch, take a definition's mapping, and are served by the records API, without editing Tether's tree.

The host package is ``support.host_models`` (a ``ticket`` model, its own metadata, its own ``migrations/``),
registered by ``TETHER_MODEL_MODULES`` and, in one test, by a real ``tether.models`` entry point.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient
from generated.ingest_types import INPUT_TYPES
from pydantic import ValidationError
from sqlalchemy import MetaData, inspect
from sqlmodel import SQLModel
from typer.testing import CliRunner

from engine.api import create_app
from engine.api.principal import create_api_key
from engine.cli import app
from engine.custody.crypto import generate_master_key
from engine.errors import ConfigurationError
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database, alembic_config
from engine.store.tables import Integration, IntegrationStatus
from ingest.catalog import builtin_catalog, catalog
from ingest.model_types import ingest_routes, ingest_types, input_type
from ingest.persistence.stock import stock_upsert
from ingest.setup import configure
from support.host_models import Ticket

HOST = "support.host_models"
DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture
def host_models(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TETHER_MODEL_MODULES", HOST)
    configure([HOST])
    yield
    configure([])


@pytest.fixture(params=DATABASES)
def db(request: pytest.FixtureRequest) -> Database:
    return request.getfixturevalue(f"{request.param}_database")


def test_the_catalog_holds_the_host_model_beside_the_built_in_ones(host_models: None) -> None:
    models = catalog()
    assert set(models) == set(builtin_catalog()) | {"ticket"}
    spec = models["ticket"]
    assert (spec.model, spec.table, spec.upsert) == (Ticket, "host_ticket", ("external_id",))
    assert spec.required == ("external_id", "title")
    assert ingest_routes()["ticket"] is stock_upsert
    configure([])
    assert "ticket" not in catalog() and "ticket" not in ingest_types()


def schema_of(model: type[Any]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.pop("description", None)
    return schema


@pytest.mark.parametrize("schema", sorted(INPUT_TYPES))
def test_types_built_from_the_classes_equal_the_generated_ones(schema: str) -> None:
    """What justifies building host types at start-up instead of generating them (docs/decisions.md)."""
    built = input_type(builtin_catalog()[schema])
    assert built.__name__ == INPUT_TYPES[schema].__name__
    assert (built.schema_name, built.topic) == (INPUT_TYPES[schema].schema_name, INPUT_TYPES[schema].topic)
    assert schema_of(built) == schema_of(INPUT_TYPES[schema])


def test_the_host_type_validates_like_a_generated_one(host_models: None) -> None:
    ticket = ingest_types()["ticket"]
    record = ticket.model_validate({"external_id": 42, "title": "Printer", "opened_at": "2026-01-02T03:04:05"})
    assert record.external_id == "42"  # type: ignore[attr-defined]
    assert record.opened_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)  # type: ignore[attr-defined]
    with pytest.raises(ValidationError):
        ticket.model_validate({"external_id": "1"})


def test_a_host_schema_clash_is_refused_naming_both() -> None:
    with pytest.raises(ConfigurationError) as raised:
        configure(["support.host_models_clash"])
    message = raised.value.message
    assert "support.host_models_clash.MyAsset" in message and "ingest.models.asset.Asset" in message
    assert "'asset'" in message
    configure([])
    assert catalog()["asset"].model.__module__ == "ingest.models.asset"


def test_an_unimportable_module_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"support\.no_such_models"):
        configure(["support.no_such_models"])
    configure([])


def test_a_real_entry_point_registers_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    info = tmp_path / "acme_helpdesk-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-helpdesk\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[tether.models]\ntickets = {HOST}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        packages = configure([])
        assert [p.module for p in packages] == [HOST]
        assert catalog()["ticket"].model is Ticket
        assert (
            packages[0].branch == "host_tickets"
            and packages[0].migrations == Path(__file__).parents[1] / "support" / "host_models" / "migrations"
        )
    finally:
        monkeypatch.undo()
        configure([])
    assert "ticket" not in catalog()


def _without_reflected_extras(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    return not (type_ == "table" and reflected and compare_to is None)


def diff(db: Database, metadata: MetaData) -> list[Any]:
    """Autogenerate's diff of ``metadata`` against the database, ignoring tables ``metadata`` does not hold."""
    with db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": _without_reflected_extras}
        )
        return list(compare_metadata(context, metadata))


def test_db_upgrade_creates_tethers_and_the_hosts_tables(db: Database, host_models: None) -> None:
    db.downgrade("base")
    assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
    assert not db.is_up_to_date()
    result = CliRunner().invoke(app, ["db", "upgrade"], env={"TETHER_DATABASE_URL": db.url})
    assert result.exit_code == 0, result.output
    assert "host_tickets_0001" in result.output
    tables = set(inspect(db.engine).get_table_names())
    assert {"integration", "asset", "record_change", "host_ticket"} <= tables
    assert db.is_up_to_date()
    assert diff(db, Ticket.__table__.metadata) == []  # the host's revision matches its model
    assert diff(db, SQLModel.metadata) == []  # and Tether's still match its own
    assert "host_ticket" not in SQLModel.metadata.tables


def test_without_the_package_the_hosts_branch_is_not_applied(db: Database) -> None:
    result = CliRunner().invoke(app, ["db", "upgrade"], env={"TETHER_DATABASE_URL": db.url})
    assert result.exit_code == 0, result.output
    assert "host_ticket" not in inspect(db.engine).get_table_names()


TICKETS = [
    {
        "id": 101,
        "subject": "Printer on fire",
        "state": "open",
        "priority": 1,
        "requester": {"email": "a@x.test"},
        "created": "2026-11-30T09:00:00Z",
    },
    {
        "id": 102,
        "subject": "VPN",
        "state": "closed",
        "priority": 3,
        "requester": {"email": "b@x.test"},
        "created": "2026-12-01T10:30:00+01:00",
    },
]


@pytest.fixture
def world(db: Database, host_models: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    monkeypatch.setenv("TETHER_SECRET_MASTER_KEY", generate_master_key())
    settings = Settings(
        database_url=db.url,
        definition_modules="support.ticket_definition",
        model_modules=HOST,
        state_dir=str(tmp_path),
    )
    runtime = Runtime.start(settings, migrate=True)
    try:
        yield runtime
    finally:
        runtime.close()


async def test_a_run_lands_tickets_that_the_records_api_and_the_feed_serve(world: Runtime) -> None:
    with world.db.session() as session:
        row = Integration(
            tenant_id="t1", owner_id="u1", definition_id="helpdesk_test", status=IntegrationStatus.connected
        )
        session.add(row)
    done = await world.executor.run_inline(row.id, "TicketSync", config={"tickets": TICKETS})
    assert done.run.status == "succeeded", done.run.error_message
    headers = {"Authorization": f"Bearer {create_api_key(world.db, tenant='t1', role='server')[0]}"}
    with TestClient(create_app(world)) as client:
        page = client.get("/v1/records/ticket", headers=headers)
        assert page.status_code == 200, page.text
        records = page.json()["data"]
        assert [(r["external_id"], r["title"], r["status"], r["priority"]) for r in records] == [
            ("101", "Printer on fire", "open", 1),
            ("102", "VPN", "closed", 3),
        ]
        assert records[1]["requester_email"] == "b@x.test" and records[1]["integration_id"] == row.id
        assert records[1]["opened_at"].startswith("2026-12-01T09:30:00")
        one = client.get(f"/v1/records/ticket/{records[0]['id']}", headers=headers)
        assert one.status_code == 200 and one.json() == records[0]
        feed = client.get("/v1/changes", params={"after": "0"}, headers=headers).json()["changes"]
        assert [(c["schema"], c["op"], c["record"]["external_id"]) for c in feed] == [
            ("ticket", "upsert", "101"),
            ("ticket", "upsert", "102"),
        ]


NOTE_PACKAGE = """
from typing import ClassVar

from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from ingest.annotations import IngestOptions, from_context, mapped, record_indexes, upsert_key


class AcmeModel(SQLModel, registry=registry()):
    pass


class Note(AcmeModel, table=True):
    __tablename__ = "acme_note"
    __table_args__ = record_indexes("acme_note")
    __ingest__: ClassVar[IngestOptions] = IngestOptions(schema="note")

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = from_context("tenant_id")
    integration_id: str = from_context("integration_id")
    definition_id: str = from_context("definition_id")
    external_id: str = upsert_key()
    body: str | None = mapped(None)
    updated_at: str | None = None
"""


@pytest.fixture
def acme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A host package written on the fly, with no migrations yet."""
    package = tmp_path / "pkgs" / "acme_desk"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(NOTE_PACKAGE)
    monkeypatch.syspath_prepend(str(package.parent))
    yield package
    configure([])
    monkeypatch.delitem(sys.modules, "acme_desk", raising=False)


def test_db_revision_autogenerates_the_hosts_tables_only(sqlite_database: Database, acme: Path) -> None:
    tether_head = ScriptDirectory.from_config(alembic_config(sqlite_database.url)).get_current_head()
    env = {"TETHER_DATABASE_URL": sqlite_database.url}
    first = CliRunner().invoke(app, ["db", "revision", "--models", "acme_desk", "-m", "notes"], env=env)
    assert first.exit_code == 0, first.output
    [written] = (acme / "migrations").glob("*.py")
    text = written.read_text()
    assert "branch_labels: str | Sequence[str] | None = ('host_acme_desk',)" in text
    assert f"depends_on: str | Sequence[str] | None = {tether_head!r}" in text
    assert text.count("op.create_table(") == 1 and "op.create_table('acme_note'" in text
    assert "drop_table" not in text.split("def downgrade")[0]  # Tether's tables are not this package's business

    upgraded = CliRunner().invoke(app, ["db", "upgrade"], env={**env, "TETHER_MODEL_MODULES": "acme_desk"})
    assert upgraded.exit_code == 0, upgraded.output
    assert "acme_note" in inspect(sqlite_database.engine).get_table_names()

    again = CliRunner().invoke(app, ["db", "revision", "--models", "acme_desk", "-m", "nothing new"], env=env)
    assert again.exit_code == 0, again.output
    [second] = (p for p in (acme / "migrations").glob("*.py") if p != written)
    body = second.read_text()
    assert "down_revision: str | None = " + repr(text.split("revision: str = ")[1].split("\n")[0].strip("'\"")) in body
    assert "op." not in body.split("def upgrade")[1].split("def downgrade")[0]


def test_db_revision_refuses_a_database_behind_its_heads(sqlite_database: Database, acme: Path) -> None:
    sqlite_database.downgrade("0001")
    result = CliRunner().invoke(
        app, ["db", "revision", "--models", "acme_desk", "-m", "x"], env={"TETHER_DATABASE_URL": sqlite_database.url}
    )
    assert result.exit_code == 1 and "not up to date" in result.output


TABLE_CLASH = NOTE_PACKAGE.replace('"acme_note"', '"contact"')


def test_a_host_table_clash_is_refused_naming_both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "acme_clash.py").write_text(TABLE_CLASH)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(ConfigurationError) as raised:
            configure(["acme_clash"])
        assert "acme_clash.Note" in raised.value.message and "ingest.models.contact.Contact" in raised.value.message
        assert "table 'contact'" in raised.value.message
        assert "note" not in catalog()
    finally:
        configure([])
        monkeypatch.delitem(sys.modules, "acme_clash", raising=False)
