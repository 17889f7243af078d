"""The principal boundary and direct input: tenants never see each other, users see only their own, and a
credential typed in goes through validation and the health check before anything is saved."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from engine.api import create_app
from engine.api.principal import create_api_key, sign_principal
from engine.store.database import Database
from engine.store.tables import ApiKey
from support.sample_runtime import start_sample_runtime

PRINCIPAL_SECRET = "principal-signing-secret-for-tests"


@pytest.fixture
async def app(database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    runtime = start_sample_runtime(monkeypatch, database.url, str(tmp_path), secret_principal_key=PRINCIPAL_SECRET)
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://tether.test") as client:
        client.runtime = runtime  # type: ignore[attr-defined]
        yield client
    runtime.close()


def server_key(client: httpx.AsyncClient, tenant: str) -> dict[str, str]:
    key, _ = create_api_key(client.runtime.db, tenant=tenant, role="server")  # type: ignore[attr-defined]
    return {"Authorization": f"Bearer {key}"}


def user(tenant: str, owner: str, **kw: int) -> dict[str, str]:
    return {"X-Tether-Principal": sign_principal(PRINCIPAL_SECRET, tenant=tenant, role="user", owner=owner, **kw)}


async def connected_integration(client: httpx.AsyncClient, headers: dict[str, str], owner: str = "alice") -> str:
    created = await client.post(
        "/v1/integrations", json={"definition_id": "sample", "owner_id": owner}, headers=headers
    )
    assert created.status_code == 201, created.text
    iid = created.json()["id"]
    entered = await client.post(
        f"/v1/integrations/{iid}/credentials/ApiToken", json={"token": "sk-live-123456"}, headers=headers
    )
    assert entered.status_code == 200, entered.text
    return iid


ENDPOINTS = [
    ("GET", ""),
    ("PATCH", ""),
    ("DELETE", ""),
    ("POST", "/disconnect"),
    ("POST", "/connect"),
    ("POST", "/upgrade"),
    ("POST", "/reconnect"),
    ("POST", "/credentials/ApiToken"),
    ("POST", "/validate"),
    ("GET", "/access-token"),
    ("GET", "/audit"),
]


async def test_every_endpoint_answers_404_across_tenants(app: httpx.AsyncClient) -> None:
    iid = await connected_integration(app, server_key(app, "tenant-a"))
    for other in (server_key(app, "tenant-b"), user("tenant-b", "alice"), user("tenant-a", "mallory")):
        for method, suffix in ENDPOINTS:
            body = {"token": "x"} if suffix.startswith("/credentials") else {}
            response = await app.request(method, f"/v1/integrations/{iid}{suffix}", json=body, headers=other)
            assert response.status_code == 404, (method, suffix, response.text)
            assert response.json() == {"error": {"code": "not_found", "message": "no such integration"}}
    listed = await app.get("/v1/integrations", headers=server_key(app, "tenant-b"))
    assert listed.json() == []
    still = await app.get(f"/v1/integrations/{iid}", headers=server_key(app, "tenant-a"))
    assert still.json()["status"] == "connected"


async def test_direct_input_connects_and_never_echoes_the_secret(app: httpx.AsyncClient) -> None:
    headers = server_key(app, "t1")
    iid = await connected_integration(app, headers)
    record = (await app.get(f"/v1/integrations/{iid}", headers=headers)).json()
    assert (record["status"], record["health"], record["connection"]) == ("connected", "valid", "ApiKey")
    bad = await app.post(
        f"/v1/integrations/{iid}/credentials/ApiToken", json={"tokn": "sk-oops-secret"}, headers=headers
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "credential_invalid"
    assert bad.json()["error"]["fields"] == [  # what a form shows beside each field; never a value
        {"field": "token", "message": "Field required."},
        {"field": "tokn", "message": "Extra inputs are not permitted."},
    ]
    assert "sk-oops-secret" not in bad.text
    not_manual = await app.post(f"/v1/integrations/{iid}/credentials/OAuthGrant", json={}, headers=headers)
    assert not_manual.json()["error"]["code"] == "connection_required"
    audit = (await app.get(f"/v1/integrations/{iid}/audit", headers=headers)).json()
    assert [(e["action"], e["outcome"]) for e in audit][-1] == ("connect", "failed")
    assert "sk-live-123456" not in str(audit)


async def test_users_see_only_their_own_and_cannot_fetch_tokens(app: httpx.AsyncClient) -> None:
    server = server_key(app, "t1")
    mine = await connected_integration(app, server, owner="alice")
    await connected_integration(app, server, owner="bob")
    alice = user("t1", "alice")
    listed = (await app.get("/v1/integrations", headers=alice)).json()
    assert [i["id"] for i in listed] == [mine]
    token = await app.get(f"/v1/integrations/{mine}/access-token", headers=alice)
    assert (token.status_code, token.json()["error"]["code"]) == (403, "forbidden")
    created = await app.post("/v1/integrations", json={"definition_id": "sample", "owner_id": "bob"}, headers=alice)
    assert created.json()["owner_id"] == "alice"  # a user principal cannot act for someone else


async def test_unauthenticated_callers(app: httpx.AsyncClient) -> None:
    cases = {
        "none": {},
        "unknown key": {"Authorization": "Bearer tk_not-a-key"},
        "bad signature": {"X-Tether-Principal": sign_principal("wrong-secret", tenant="t1", role="user", owner="a")},
        "expired": user("t1", "alice", ttl_seconds=-10),
        "garbage": {"X-Tether-Principal": "eyJub3QiOiJqc29uIn0.abc"},
    }
    for name, headers in cases.items():
        response = await app.get("/v1/integrations", headers=headers)
        assert (response.status_code, response.json()["error"]["code"]) == (401, "unauthenticated"), name
    key = server_key(app, "t1")
    with app.runtime.db.session() as session:  # type: ignore[attr-defined]
        from sqlmodel import select

        row = session.exec(select(ApiKey)).all()[-1]
        row.revoked_at = row.created_at
        session.add(row)
    assert (await app.get("/v1/integrations", headers=key)).status_code == 401


async def test_user_input_and_filter_are_validated_on_save(app: httpx.AsyncClient) -> None:
    headers = server_key(app, "t1")
    iid = await connected_integration(app, headers)
    ok = await app.patch(
        f"/v1/integrations/{iid}",
        json={"user_input": {"project": "p1"}, "filter_expr": 'payload.kind == "item"'},
        headers=headers,
    )
    assert ok.status_code == 200 and ok.json()["user_input"] == {"project": "p1"}
    bad_input = await app.patch(f"/v1/integrations/{iid}", json={"user_input": {"nope": 1}}, headers=headers)
    assert bad_input.status_code == 422
    bad_filter = await app.patch(f"/v1/integrations/{iid}", json={"filter_expr": "payload.(("}, headers=headers)
    assert bad_filter.status_code == 422 and bad_filter.json()["error"]["code"] == "invalid_integration_filter"
