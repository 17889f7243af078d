"""The catalog over HTTP, against the app in-process (ASGI) with a real SQLite database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from engine.api import create_app
from engine.catalog.registry import Registry
from engine.runtime import Runtime
from engine.settings import Settings
from support import sample_definition as s
from support.scratchdb import migrated


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    monkeypatch.setenv("TETHER_SAMPLE_CLIENT_ID", "sample-client")
    monkeypatch.setenv("TETHER_SECRET_SAMPLE_CLIENT_SECRET", "s3cr3t-value")
    registry = Registry()
    registry.register(s.definition)
    rt = migrated(Runtime.start(Settings(database_url=f"sqlite:///{tmp_path / 't.db'}"), registry=registry))
    yield rt
    rt.close()


@pytest.fixture
async def client(runtime: Runtime) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(runtime))
    return httpx.AsyncClient(transport=transport, base_url="http://tether.test")


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "sqlite", "definitions": 1}


async def test_list_definitions(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/definitions")
    assert response.status_code == 200
    [sample] = response.json()
    assert sample["id"] == "sample" and sample["enabled"] is True
    assert sample["connections"] == ["ApiKey", "OAuth"]
    assert sample["operations"] == ["HealthCheck", "ItemSync", "ItemUpdate"]
    assert sample["webhooks"] == ["sample.events"]
    assert sample["schemas"] == [{"schema_name": "asset", "variant": "item"}]
    assert sample["missing_config"] == []


async def test_a_disabled_definition_lists_the_variables_that_enable_it(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TETHER_SECRET_SAMPLE_CLIENT_SECRET")
    registry = Registry()
    registry.register(s.definition)
    rt = Runtime.start(runtime.settings, registry=registry)
    try:
        transport = httpx.ASGITransport(app=create_app(rt))
        async with httpx.AsyncClient(transport=transport, base_url="http://tether.test") as http:
            [sample] = (await http.get("/v1/definitions")).json()
    finally:
        rt.close()
    assert (sample["enabled"], sample["missing_config"]) == (False, ["TETHER_SECRET_SAMPLE_CLIENT_SECRET"])


async def test_definition_detail_has_schemas_and_hints(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/definitions/sample")
    assert response.status_code == 200
    body = response.json()
    assert body["user_input_schema"]["properties"]["project"]["default"] == "default"
    api_key, oauth = body["connection_details"]
    assert api_key["auth"] == "direct_input"
    token = api_key["manual_slot_schema"]["properties"]["token"]
    assert token["writeOnly"] is True and token["format"] == "password"
    assert api_key["disconnect"] == "none" and "delete the token" in api_key["disconnect_note"]
    assert oauth["auth"] == "oauth2" and oauth["manual_slot_schema"] is None
    assert oauth["scopes"] == ["read"] and oauth["upgrade_scopes"] == ["read", "write"]
    sync = body["operation_details"][1]
    assert sync["topic"] == "sample.ItemSync" and sync["mode"] == "queued" and sync["reconcile"] is True
    assert body["webhook_details"][0]["events"][0]["topic"] == "sample.ItemChanged"
    assert "s3cr3t-value" not in response.text


async def test_unknown_definition_is_a_typed_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/definitions/nope")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "no definition 'nope'"}}


async def test_unknown_route_uses_the_error_envelope(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_body_over_one_megabyte_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/definitions", content=b"x" * (1024 * 1024 + 1))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


async def test_openapi_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert "/v1/definitions/{definition_id}" in response.json()["paths"]


def test_definition_without_its_operator_config_is_listed_but_disabled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TETHER_SAMPLE_CLIENT_ID", raising=False)
    monkeypatch.delenv("TETHER_SECRET_SAMPLE_CLIENT_SECRET", raising=False)
    registry = Registry()
    registry.register(s.definition)
    rt = Runtime.start(Settings(database_url=f"sqlite:///{tmp_path / 't.db'}"), registry=registry)
    try:
        assert not rt.enabled("sample")
        assert rt.disabled["sample"] == ["TETHER_SAMPLE_CLIENT_ID", "TETHER_SECRET_SAMPLE_CLIENT_SECRET"]
    finally:
        rt.close()
