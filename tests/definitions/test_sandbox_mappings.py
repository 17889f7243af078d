"""The sandbox definition's declarations and mappings, on records in the contract's published shapes (no server).

The live behaviour (connect, sync, refresh, revoke, 429, webhooks) is proven against the real sandbox server in
``test_sandbox.py``; this file pins what each record becomes, tombstones included, through the shared ingest path.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from definitions.sandbox import definition
from definitions.sandbox.connections import SandboxKey, SandboxOAuth
from definitions.sandbox.kinds import KINDS
from definitions.sandbox.operations import Sync, later, payload
from definitions.sandbox.slots import SandboxApiKey
from definitions.sandbox.webhook import RecordDeleted, RecordUpdated, SandboxEvents
from engine import OAuth2
from engine.catalog.describe import detail
from engine.catalog.registry import Registry
from ingest.pipeline import IngestContext, IngestPipeline

RECORDS: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "sandbox" / "records.json").read_text()
)


@pytest.fixture(scope="module")
def pipeline() -> IngestPipeline:
    registry = Registry()
    registry.register(definition)
    return IngestPipeline(registry)


CTX = IngestContext(tenant_id="acme", integration_id="int_1", definition_id="sandbox", emits=Sync.emits)


def mapped(pipeline: IngestPipeline, kind: str, record: dict[str, Any]) -> dict[str, Any]:
    outcome = pipeline.evaluate(CTX, payload(kind, record, action="sync"))
    assert outcome.status == "mapped", outcome.reason
    assert outcome.object is not None
    return outcome.object.model_dump()


def test_every_kind_maps_into_its_model(pipeline: IngestPipeline) -> None:
    user = mapped(pipeline, "users", RECORDS["users"])
    assert user["external_id"] == "usr_acme_01"
    assert (user["email"], user["display_name"], user["status"]) == ("ada@acme.example", "Ada Lovelace", "active")
    assert user["source_created_at"] == datetime(2026, 1, 1, tzinfo=UTC)
    assert user["attributes"] == {"title": "Engineer", "department": "Engineering",
                                  "updated_at": "2026-01-01T00:00:00Z", "deleted": False}
    group = mapped(pipeline, "groups", RECORDS["groups"])
    assert (group["external_id"], group["name"]) == ("grp_acme_01", "Engineering")
    assert group["description"] == "Builds things"
    member = mapped(pipeline, "memberships", RECORDS["memberships"])
    assert (member["account_external_id"], member["group_external_id"], member["role"]) == (
        "usr_acme_01", "grp_acme_01", "owner")
    asset = mapped(pipeline, "assets", RECORDS["assets"])
    assert (asset["source_identifier"], asset["asset_type"]) == ("ast_acme_01", "host")
    assert asset["name"] == "web-01.acme.example"
    assert asset["owner"] == "ada@acme.example" and asset["archived"] is False
    assert asset["attributes"] == {"ip": "10.0.0.1", "os": "Ubuntu 24.04", "deleted": False}
    finding = mapped(pipeline, "findings", RECORDS["findings"])
    assert (finding["external_id"], finding["severity"], finding["status"]) == ("fnd_acme_01", "high", "open")
    assert finding["resource_identifier"] == "ast_acme_01" and finding["attributes"]["cve"] == "CVE-2024-0727"
    event = mapped(pipeline, "events", RECORDS["events"])
    assert event["external_id"] == "evt_acme_01" and event["status"] == "confirmed"
    assert event["start_at"] == datetime(2026, 1, 5, 9, tzinfo=UTC)
    assert event["attendees"] == ["ada@acme.example", "grace@acme.example"]


@pytest.mark.parametrize("kind", [k.name for k in KINDS])
def test_a_deleted_record_is_a_tombstone(pipeline: IngestPipeline, kind: str) -> None:
    row = mapped(pipeline, kind, {**RECORDS[kind], "deleted": True})
    assert row["attributes"]["deleted"] is True
    expected = {"users": "deleted", "findings": "deleted", "events": "cancelled"}
    if kind in expected:
        assert row["status"] == expected[kind]
    if kind == "assets":
        assert row["archived"] is True


def test_optional_fields_may_be_missing(pipeline: IngestPipeline) -> None:
    bare = {"id": "usr_x", "updated_at": "2026-01-01T00:00:00Z"}
    user = mapped(pipeline, "users", bare)
    assert user["email"] is None and user["status"] == "active" and user["attributes"]["deleted"] is False
    assert mapped(pipeline, "users", {**bare, "active": False})["status"] == "suspended"


def test_a_record_without_its_key_is_rejected_not_dropped(pipeline: IngestPipeline) -> None:
    outcome = pipeline.evaluate(CTX, payload("groups", {"description": "no id, no name"}, action="sync"))
    assert outcome.status == "rejected" and outcome.reason_code == "map_error"


def test_watermark_is_the_latest_instant_seen() -> None:
    assert later(None, {"updated_at": "2026-01-01T00:00:00Z"}) == "2026-01-01T00:00:00Z"
    assert later("2026-01-02T00:00:00Z", {"updated_at": "2026-01-01T23:00:00+00:00"}) == "2026-01-02T00:00:00Z"
    # Compared as instants, not text: 00:30+01:00 is 23:30Z the day before.
    assert later("2026-01-01T23:00:00Z", {"updated_at": "2026-01-02T00:30:00+01:00"}) == "2026-01-02T00:30:00+01:00"
    assert later("2026-01-01T00:00:00Z", {"updated_at": "not a date"}) == "2026-01-01T00:00:00Z"
    assert later("2026-01-01T00:00:00Z", {"updated_at": "2026-01-09T00:00:00"}) == "2026-01-01T00:00:00Z"  # no zone


def test_declarations_read_as_the_contract_says() -> None:
    assert definition.id == "sandbox" and definition.requires_settings == ("sandbox",)
    auth = SandboxOAuth.auth
    assert isinstance(auth, OAuth2) and auth.pkce
    at = auth.at("http://127.0.0.1:8123/")
    assert at.authorize_url == "http://127.0.0.1:8123/sandbox/oauth/authorize"
    assert at.token_url == "http://127.0.0.1:8123/sandbox/oauth/token"
    assert at.revoke_url == "http://127.0.0.1:8123/sandbox/oauth/revoke"
    assert SandboxKey.auth is None and SandboxKey.credential is SandboxApiKey
    schema = SandboxApiKey.form_schema()["properties"]["api_key"]
    assert schema["title"] == "API key" and schema["writeOnly"] is True and schema["format"] == "password"
    view = detail(definition, enabled=True, missing_config=[])
    kinds = {c.id: (c.auth, c.disconnect) for c in view.connection_details}
    assert kinds == {"SandboxOAuth": ("oauth2", "revoke"), "SandboxKey": ("direct_input", "none")}
    assert [e.match for e in SandboxEvents.events] == ["record.created", "record.updated", "record.deleted"]
    assert RecordDeleted.deleted and not RecordUpdated.deleted


def test_the_registry_accepts_public_url_endpoints_but_not_other_http() -> None:
    from dataclasses import replace

    from engine.errors import DefinitionError

    registry = Registry()
    registry.register(definition)  # {public_url}/sandbox/... is Tether's own origin
    bad = replace(SandboxOAuth.auth, token_url="http://sandbox.example/oauth/token")
    plain = type("PlainOAuth", (SandboxOAuth,), {"auth": bad})
    with pytest.raises(DefinitionError) as refused:
        Registry().register(replace(definition, connections=(plain, SandboxKey)))
    assert refused.value.rule == "https_only"


@pytest.mark.parametrize("account", ["acme", "globex", "initech"])
def test_every_seeded_record_of_the_real_sandbox_maps(pipeline: IngestPipeline, account: str) -> None:
    """The sandbox's own seed (what its API serves, shaped as ``engine.sandbox.store.shape`` does), whole: every record
    of every account maps, live and as a deletion."""
    from engine.sandbox.seed import BY_ID, rfc3339, seed_records

    seeded = seed_records(BY_ID[account])
    assert {kind for kind, *_ in seeded} == {k.name for k in KINDS}
    for kind, record_id, fields, updated_at in seeded:
        record = {"id": record_id, **fields, "updated_at": rfc3339(updated_at), "deleted": False}
        assert mapped(pipeline, kind, record)["attributes"]["deleted"] is False
        assert mapped(pipeline, kind, {**record, "deleted": True})["attributes"]["deleted"] is True


def test_off_the_definition_is_disabled_naming_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.context import EngineContext
    from engine.custody.crypto import generate_master_key
    from engine.errors import ConfigurationError
    from engine.settings import Settings

    monkeypatch.setenv("TETHER_SECRET_MASTER_KEY", generate_master_key())
    url = f"sqlite:///{tmp_path / 'tether.db'}"
    off = EngineContext.start(Settings(database_url=url, state_dir=str(tmp_path), sandbox=False))
    try:
        assert off.disabled["sandbox"] == ["TETHER_SANDBOX=1"] and not off.enabled("sandbox")
    finally:
        off.close()
    on = EngineContext.start(Settings(database_url=url, state_dir=str(tmp_path)))  # the embedded default
    try:
        assert on.enabled("sandbox") and "sandbox" not in on.disabled
    finally:
        on.close()
    with pytest.raises(ConfigurationError, match="TETHER_SANDBOX=1"):
        EngineContext.start(Settings(database_url=url, state_dir=str(tmp_path), sandbox=False,
                                     enabled_definitions="sandbox"))


def test_an_unknown_switch_fails_start_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from engine.context import EngineContext
    from engine.custody.crypto import generate_master_key
    from engine.errors import ConfigurationError
    from engine.settings import Settings

    monkeypatch.setenv("TETHER_SECRET_MASTER_KEY", generate_master_key())
    registry = Registry()
    registry.register(replace(definition, requires_settings=("no_such_switch",)))
    with pytest.raises(ConfigurationError, match="no_such_switch"):
        EngineContext.start(Settings(database_url=f"sqlite:///{tmp_path / 'tether.db'}", state_dir=str(tmp_path)),
                            registry=registry)
