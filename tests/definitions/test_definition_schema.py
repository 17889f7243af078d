"""The JSON Schema of definition files: generated from the pydantic models that validate them, checked in fresh,
served by the engine, and agreeing with the loader on the files it accepts and refuses.

The loader validates with pydantic (the schema's source); these tests hold the schema to it with ``jsonschema``,
so an editor checking a file against the schema sees what start-up will see.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from definitions.custom_oauth2 import PROVIDERS, OverrideSpec, ProviderSpec, json_schema, read_file
from definitions.custom_oauth2.schema import API_PATH, DOCS_PATH, render
from engine.api import create_app
from engine.catalog.registry import Registry
from engine.runtime import Runtime
from engine.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "definitions"
DOCS = ROOT / "docs"
VALIDATOR = Draft202012Validator(json_schema())


def shipped_files() -> list[Path]:
    """Every definition file in the repository: the providers, the Python definitions' OAuth parts, the docs."""
    found = [*PROVIDERS.glob("*.toml"), *SRC.glob("*/oauth.toml"), *(DOCS / "examples").glob("*.toml")]
    assert len(found) >= 4
    return sorted(found)


def loaded(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text()) if path.suffix == ".toml" else json.loads(path.read_text())


def test_the_checked_in_schema_is_the_generated_one() -> None:
    assert (DOCS / DOCS_PATH).read_text() == render(), "run scripts/codegen.py"
    Draft202012Validator.check_schema(json_schema())


@pytest.mark.parametrize("path", shipped_files(), ids=lambda p: p.name)
def test_every_shipped_file_is_valid_by_the_schema_and_the_loader(path: Path) -> None:
    errors = [e.message for e in VALIDATOR.iter_errors(loaded(path))]
    assert errors == []
    read_file(path)


GOOD: dict[str, Any] = {
    "id": "acme_crm",
    "name": "Acme CRM",
    "clientId": {"secret": "ACME_CRM_CLIENT_ID"},
    "clientSecret": {"secret": "ACME_CRM_CLIENT_SECRET"},
    "authorizeUrl": "https://login.acme.example/authorize",
    "tokenUrl": "https://login.acme.example/token",
    "accountUrl": "https://api.acme.example/me",
    "accountIdPath": "id",
}
OVERRIDE: dict[str, Any] = {"override": "notion", "mode": "required", "scopes": ["read:pages"]}


def model_accepts(data: dict[str, Any]) -> bool:
    try:
        (OverrideSpec if "override" in data else ProviderSpec).model_validate(data)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize(
    "data",
    [
        GOOD,
        {**GOOD, "$schema": "https://tether.example/schemas/definition.schema.json", "access": "write"},
        {**GOOD, "headers": {"X-Api-Version": "2"}, "authorizeParams": {"prompt": "consent"}},
        OVERRIDE,
        {"override": "todoist"},
        {**GOOD, "mode": "sometimes"},
        {**GOOD, "tokenURL": "https://x.example"},
        {k: v for k, v in GOOD.items() if k != "tokenUrl"},
        {**GOOD, "override": "notion"},
        {**OVERRIDE, "tokenUrl": "https://x.example"},
        {**GOOD, "id": "Acme"},
        {**GOOD, "clientId": {"secret": "acme_crm_id"}},
        {**GOOD, "clientId": "the-literal-id"},
        {**GOOD, "scopes": "read"},
        {**GOOD, "headers": {"X": 1}},
        {**OVERRIDE, "onboarding": "never"},
        {**OVERRIDE, "override": "Notion"},
    ],
)
def test_the_schema_and_the_loader_agree(data: dict[str, Any]) -> None:
    assert VALIDATOR.is_valid(data) == model_accepts(data)


def test_what_the_schema_cannot_say_the_loader_still_checks() -> None:
    """A JSON Schema has no rule across keys: secret names start with the definition's ID."""
    data = {**GOOD, "clientId": {"secret": "OTHER_CLIENT_ID"}}
    assert VALIDATOR.is_valid(data) and not model_accepts(data)


def test_every_key_of_the_format_is_documented() -> None:
    """docs/data-definitions.md has a row for each key of each shape (a new field without docs fails here)."""
    page = (DOCS / "data-definitions.md").read_text()
    keys = {key for shape in json_schema()["$defs"].values() for key in shape.get("properties", {})}
    assert {"id", "override", "clientId", "secret", "$schema"} <= keys
    undocumented = sorted(key for key in keys if f"`{key}`" not in page)
    assert undocumented == []


def test_the_docs_name_the_published_schema_and_the_engine_route() -> None:
    page = (DOCS / "data-definitions.md").read_text()
    assert DOCS_PATH in page and API_PATH in page and "#:schema" in page


async def test_the_engine_serves_the_schema_without_credentials(tmp_path: Path) -> None:
    runtime = Runtime.start(Settings(database_url=f"sqlite:///{tmp_path / 't.db'}"), registry=Registry(), migrate=True)
    try:
        transport = httpx.ASGITransport(app=create_app(runtime))
        async with httpx.AsyncClient(transport=transport, base_url="http://tether.test") as client:
            response = await client.get(API_PATH)
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("application/schema+json")
            assert response.json() == json_schema()
            assert API_PATH in (await client.get("/openapi.json")).json()["paths"]
    finally:
        runtime.close()
