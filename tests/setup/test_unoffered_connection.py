"""A connection whose operator config is incomplete is not offered (issue 16, item 4).

Google Workspace keeps its OAuth client optional so that the service-account connection works without one. Its
OAuth connection still cannot start without the client secret: connect answered 500 ``client_secret_basic needs a
client secret`` while the catalog listed everything as enabled with no missing config.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from engine.api import create_app
from engine.api.principal import create_api_key
from engine.custody.crypto import generate_master_key
from engine.errors import ConfigurationError
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database

CLIENT_ID = "TETHER_GOOGLE_WORKSPACE_CLIENT_ID"
CLIENT_SECRET = "TETHER_SECRET_GOOGLE_WORKSPACE_CLIENT_SECRET"


def settings(database: Database, tmp_path: Path, **extra: str) -> Settings:
    return Settings(
        database_url=database.url,
        definition_modules="support.account_definition:optional_client",
        state_dir=str(tmp_path),
        public_url="http://tether.test",
        **extra,
    )


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("TETHER_SECRET_MASTER_KEY", generate_master_key())
    for name in (
        CLIENT_ID,
        CLIENT_SECRET,
        "TETHER_OPTIONAL_CLIENT_CLIENT_ID",
        "TETHER_SECRET_OPTIONAL_CLIENT_CLIENT_SECRET",
    ):
        monkeypatch.delenv(name, raising=False)
    import support.account_definition

    importlib.reload(support.account_definition)
    return monkeypatch


@pytest.fixture
async def api(database: Database, tmp_path: Path, environment: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    environment.setenv(CLIENT_ID, "workspace-client.apps.googleusercontent.com")  # the ID alone is not enough
    runtime = Runtime.start(settings(database, tmp_path))
    key, _ = create_api_key(runtime.db, tenant="t1", role="server")
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://tether.test", headers={"Authorization": f"Bearer {key}"}
    ) as client:
        yield client
    runtime.close()


async def test_the_oauth_connection_without_its_client_secret_is_not_offered(api: httpx.AsyncClient) -> None:
    shown = (await api.get("/v1/definitions/google_workspace")).json()
    assert shown["enabled"] is True  # the service-account connection needs no OAuth client
    assert shown["missing_config"] == [CLIENT_SECRET]
    connections = {c["id"]: c for c in shown["connection_details"]}
    assert (
        connections["GoogleWorkspaceOAuthConnection"]["enabled"],
        connections["GoogleWorkspaceOAuthConnection"]["missing_config"],
    ) == (False, [CLIENT_SECRET])
    assert (
        connections["GoogleServiceAccountConnection"]["enabled"],
        connections["GoogleServiceAccountConnection"]["missing_config"],
    ) == (True, [])

    created = await api.post("/v1/integrations", json={"definition_id": "google_workspace", "owner_id": "alice"})
    assert created.status_code == 201, created.text
    iid = created.json()["id"]
    connect = await api.post(f"/v1/integrations/{iid}/connect", json={})
    assert (connect.status_code, connect.json()["error"]["code"]) == (403, "provider_not_enabled")
    assert CLIENT_SECRET in connect.json()["error"]["message"]
    named = await api.post(f"/v1/integrations/{iid}/connect", json={"connection": "GoogleWorkspaceOAuthConnection"})
    assert (named.status_code, named.json()["error"]["code"]) == (403, "provider_not_enabled")


async def test_a_definition_none_of_whose_connections_can_start_is_not_enabled(api: httpx.AsyncClient) -> None:
    listed = {d["id"]: d for d in (await api.get("/v1/definitions")).json()}
    assert listed["optional_client"]["enabled"] is False
    shown = (await api.get("/v1/definitions/optional_client")).json()
    assert shown["missing_config"] == [
        "TETHER_OPTIONAL_CLIENT_CLIENT_ID",
        "TETHER_SECRET_OPTIONAL_CLIENT_CLIENT_SECRET",
    ]
    created = await api.post("/v1/integrations", json={"definition_id": "optional_client", "owner_id": "alice"})
    assert (created.status_code, created.json()["error"]["code"]) == (403, "provider_not_enabled")


def test_a_required_definition_that_cannot_offer_a_connection_fails_start_up(
    database: Database, tmp_path: Path, environment: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Runtime.start(settings(database, tmp_path, enabled_definitions="optional_client"))
    assert "TETHER_SECRET_OPTIONAL_CLIENT_CLIENT_SECRET" in caught.value.message
