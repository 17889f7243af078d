"""The app-install callback walks the same reconciliation: the claimed installation is verified before anything
is saved, and step 10 (reconcile) runs on the first successful connection only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlmodel import select

from engine.api import create_app
from engine.api.principal import create_api_key
from engine.custody.crypto import generate_master_key
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database
from engine.store.tables import Integration, Run


@pytest.fixture
async def api(database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("TETHER_SECRET_MASTER_KEY", generate_master_key())
    settings = Settings(
        database_url=database.url,
        definition_modules="support.install_definition",
        state_dir=str(tmp_path),
        public_url="http://tether.test",
    )
    runtime = Runtime.start(settings)
    key, _ = create_api_key(runtime.db, tenant="t1", role="server")
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://tether.test", headers={"Authorization": f"Bearer {key}"}
    ) as client:
        client.runtime = runtime  # type: ignore[attr-defined]
        yield client
    runtime.close()


async def install(api: httpx.AsyncClient, integration_id: str, installation_id: int) -> httpx.Response:
    """Play the browser: Tether's start URL, the provider's install page (skipped), back to the callback."""
    redirect = (await api.post(f"/v1/integrations/{integration_id}/connect", json={})).json()["redirect_url"]
    start = await api.get(redirect.removeprefix("http://tether.test"))
    assert start.status_code == 302
    provider = urlsplit(start.headers["location"])
    assert provider.netloc == "install.example" and provider.path == "/apps/tether-test/installations/new"
    state = parse_qs(provider.query)["state"][0]
    return await api.get(
        "/v1/oauth/callback",
        params={"installation_id": str(installation_id), "setup_action": "install", "state": state},
    )


def reconcile_runs(api: httpx.AsyncClient, integration_id: str) -> list[Run]:
    with api.runtime.db.session() as session:  # type: ignore[attr-defined]
        return list(session.exec(select(Run).where(Run.integration_id == integration_id, Run.trigger == "reconcile")))


async def test_install_callback_connects_and_reconciles_once(api: httpx.AsyncClient) -> None:
    iid = (await api.post("/v1/integrations", json={"definition_id": "install_sample", "owner_id": "u1"})).json()["id"]
    done = await install(api, iid, 4242)
    assert done.status_code == 200, done.text
    assert done.json()["result"] == "connected"
    record = (await api.get(f"/v1/integrations/{iid}")).json()
    assert (record["status"], record["connection"], record["account"]["account_name"]) == (
        "connected",
        "AppConnection",
        "acme-org",
    )
    with api.runtime.db.session() as session:  # type: ignore[attr-defined]
        row = session.get(Integration, iid)
    assert row is not None and row.provider_data["installation_id"] == "4242"
    first = reconcile_runs(api, iid)
    assert [r.operation for r in first] == ["ItemSync"]

    again = await install(api, iid, 4242)  # a reconnect: the same steps, but not step 10
    assert again.status_code == 200
    assert [r.id for r in reconcile_runs(api, iid)] == [r.id for r in first]
    audit = [(e["action"], e["outcome"]) for e in (await api.get(f"/v1/integrations/{iid}/audit")).json()]
    assert audit.count(("connect", "ok")) == 2


async def test_a_claimed_installation_that_is_not_ours_changes_nothing(api: httpx.AsyncClient) -> None:
    iid = (await api.post("/v1/integrations", json={"definition_id": "install_sample", "owner_id": "u2"})).json()["id"]
    forged = await install(api, iid, 999)
    assert (forged.status_code, forged.json()["error"]["code"]) == (422, "credential_rejected")
    record = (await api.get(f"/v1/integrations/{iid}")).json()
    assert (record["status"], record["connection"]) == ("pending", None)
    assert reconcile_runs(api, iid) == []
    audit = [(e["action"], e["outcome"]) for e in (await api.get(f"/v1/integrations/{iid}/audit")).json()]
    assert ("connect", "failed") in audit
