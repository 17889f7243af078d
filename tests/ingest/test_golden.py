"""Golden tests: each mapping of the reference definitions, payload in → typed object out (no database)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from generated.ingest_types import AssetInput, DirectoryAccountInput, DirectoryGroupInput, DirectoryMembershipInput

from engine import Emits, Payload
from engine.catalog.registry import Registry
from ingest.pipeline import IngestContext, IngestPipeline
from support.directory import directory_context, user

FIXTURES = Path(__file__).parents[1] / "fixtures" / "github_app"
GITHUB = IngestContext("tenant_1", "int_1", "github_app", emits=[Emits("asset", "repository")])


def recorded(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


@pytest.fixture
def offline(registry: Registry) -> IngestPipeline:
    return IngestPipeline(registry)


def test_github_repository_from_the_sync(offline: IngestPipeline) -> None:
    repo = recorded("installation_repositories_page1")["body"]["repositories"][0]
    outcome = offline.evaluate(GITHUB, Payload("asset", repo, "repository"), position=7)
    assert outcome.status == "mapped" and outcome.position == 7
    assert outcome.object == AssetInput(
        source_identifier="R_kgDOABPHjQ",
        name="acme/tether",
        asset_type="repository",
        description="An integration engine",
        url="https://github.com/acme/tether",
        owner="acme",
        visibility="public",
        archived=False,
        source_updated_at=datetime(2024, 5, 2, 9, 15, 27, tzinfo=UTC),
    )


def test_github_repository_with_null_and_missing_fields(offline: IngestPipeline) -> None:
    repo = recorded("installation_repositories_page1")["body"]["repositories"][1]
    for key in ("visibility", "archived", "updated_at"):
        del repo[key]
    outcome = offline.evaluate(GITHUB, Payload("asset", repo, "repository"))
    assert outcome.object == AssetInput(
        source_identifier="R_kgDOABPHjg",
        name="acme/billing",
        asset_type="repository",
        description=None,
        url="https://github.com/acme/billing",
        owner="acme",
        visibility="private",
    )


def test_github_repository_webhook(offline: IngestPipeline) -> None:
    body = recorded("webhook_repository")["body"]
    payload = Payload("asset", body["repository"], "repository", action=body["action"])
    outcome = offline.evaluate(GITHUB, payload)
    assert outcome.status == "mapped"
    assert outcome.object is not None
    assert outcome.object.source_identifier == body["repository"]["node_id"]
    assert outcome.object.name == body["repository"]["full_name"]
    deleted = offline.evaluate(GITHUB, Payload("asset", body["repository"], "repository", action="deleted"))
    assert deleted.status == "filtered"


def test_directory_account(offline: IngestPipeline) -> None:
    outcome = offline.evaluate(directory_context(), Payload("directory_account", user(21), "user"))
    assert outcome.object == DirectoryAccountInput(
        external_id="10000021",
        email="user21@acme.test",
        display_name="Given21 Family21",
        given_name="Given21",
        family_name="Family21",
        status="suspended",
        is_admin=False,
        mfa_enabled=False,
        last_login_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
    )


def test_directory_account_bots_are_filtered(offline: IngestPipeline) -> None:
    outcome = offline.evaluate(directory_context(), Payload("directory_account", user(1, isBot=True), "user"))
    assert outcome.status == "filtered"


def test_directory_group_passes_through_an_empty_map(offline: IngestPipeline) -> None:
    group = {"external_id": 42, "name": "Engineering", "member_count": 3, "etag": "ignored"}
    outcome = offline.evaluate(directory_context(), Payload("directory_group", group, "group"))
    assert outcome.object == DirectoryGroupInput(external_id="42", name="Engineering", member_count=3)


def test_directory_membership(offline: IngestPipeline) -> None:
    member = {"id": "10000001", "groupId": "g1", "role": "OWNER", "type": "USER"}
    outcome = offline.evaluate(directory_context(), Payload("directory_membership", member, "member"))
    assert outcome.object == DirectoryMembershipInput(
        account_external_id="10000001", group_external_id="g1", role="OWNER"
    )
