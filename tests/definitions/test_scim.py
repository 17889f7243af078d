"""SCIM 2.0 endpoints over the ASGI app, on both databases: CRUD, filters, pagination, PATCH, tenant isolation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import select

from engine.api import scim as scim_api
from engine.api.errors import install_error_handlers
from engine.api.limits import BodyLimit
from engine.api.principal import Principal
from engine.catalog.registry import Registry
from engine.custody.crypto import KeyRing, generate_master_key
from engine.custody.masterkey import KeySource
from engine.runtime import Runtime
from engine.scim import definition as scim_definition
from engine.scim.connect import ScimConnection, connect
from engine.settings import Settings
from engine.store.database import Database
from ingest.models.directory_account import DirectoryAccount
from ingest.models.directory_group import DirectoryGroup
from ingest.models.directory_membership import DirectoryMembership

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def make_runtime(db: Database) -> Runtime:
    registry = Registry()
    registry.register(scim_definition)
    runtime = Runtime(
        Settings(database_url=db.url, public_url="https://tether.example"),
        db,
        registry,
        KeySource(KeyRing.from_master_key(generate_master_key()), "env"),
    )
    runtime._load_operator_configs()
    return runtime


def make_app(runtime: Runtime) -> FastAPI:
    app = FastAPI()
    app.state.runtime = runtime
    install_error_handlers(app)
    app.add_middleware(BodyLimit)
    app.include_router(scim_api.router)
    return app


@dataclass
class Scim:
    runtime: Runtime
    client: httpx.AsyncClient
    a: ScimConnection
    b: ScimConnection

    def path(self, conn: ScimConnection, rest: str) -> str:
        return f"/v1/scim/{conn.token}/v2{rest}"

    def auth(self, conn: ScimConnection) -> dict[str, str]:
        return {"Authorization": f"Bearer {conn.bearer_token}", "Content-Type": "application/scim+json"}

    async def call(self, method: str, rest: str, conn: ScimConnection | None = None, **kw: object) -> httpx.Response:
        conn = conn or self.a
        return await self.client.request(method, self.path(conn, rest), headers=self.auth(conn), **kw)  # type: ignore[arg-type]


@pytest.fixture
async def scim(database: Database) -> AsyncIterator[Scim]:
    runtime = make_runtime(database)
    a = await connect(runtime, Principal(tenant_id="t1", role="server"), owner_id="o1")
    b = await connect(runtime, Principal(tenant_id="t2", role="server"), owner_id="o2")
    app = make_app(runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tether.test") as client:
        yield Scim(runtime, client, a, b)


def user_body(name: str, external: str = "", **extra: object) -> dict[str, object]:
    body: dict[str, object] = {
        "schemas": [USER],
        "userName": name,
        "name": {"givenName": name.title(), "familyName": "Doe"},
        "emails": [{"value": f"{name}@example.com", "type": "work", "primary": True}],
        "active": True,
        "password": "never-stored",
        **extra,
    }
    if external:
        body["externalId"] = external
    return body


async def test_connect_is_idempotent_and_gives_url_and_token(scim: Scim) -> None:
    again = await connect(scim.runtime, Principal(tenant_id="t1", role="server"), owner_id="o1")
    assert again == scim.a
    assert scim.a.base_url == f"https://tether.example/v1/scim/{scim.a.token}/v2"
    assert scim.a.bearer_token and scim.a.bearer_token != scim.b.bearer_token


async def test_user_crud_and_directory_rows(scim: Scim) -> None:
    created = await scim.call("POST", "/Users", json=user_body("alice", "ext-1"))
    assert created.status_code == 201, created.text
    assert created.headers["content-type"].startswith("application/scim+json")
    user = created.json()
    assert user["userName"] == "alice" and user["id"] and "password" not in user
    assert user["meta"]["resourceType"] == "User"
    assert created.headers["location"] == user["meta"]["location"]

    got = await scim.call("GET", f"/Users/{user['id']}")
    assert got.status_code == 200 and got.json()["externalId"] == "ext-1"

    with scim.runtime.db.session() as session:
        row = session.exec(select(DirectoryAccount).where(DirectoryAccount.external_id == user["id"])).one()
    assert (row.username, row.email, row.given_name, row.status) == ("alice", "alice@example.com", "Alice", "active")
    assert row.integration_id == scim.a.integration_id and row.tenant_id == "t1"

    dup = await scim.call("POST", "/Users", json=user_body("ALICE"))
    assert dup.status_code == 409 and dup.json()["scimType"] == "uniqueness"
    assert dup.json()["schemas"] == [ERROR] and dup.json()["status"] == "409"

    replaced = await scim.call("PUT", f"/Users/{user['id']}", json=user_body("alice2", "ext-1", displayName="A"))
    assert replaced.status_code == 200 and replaced.json()["userName"] == "alice2"
    assert replaced.json()["meta"]["created"] == user["meta"]["created"]

    patched = await scim.call(
        "PATCH",
        f"/Users/{user['id']}",
        json={"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["active"] is False
    with scim.runtime.db.session() as session:
        row = session.exec(select(DirectoryAccount).where(DirectoryAccount.external_id == user["id"])).one()
    assert row.status == "suspended" and row.username == "alice2"

    deleted = await scim.call("DELETE", f"/Users/{user['id']}")
    assert deleted.status_code == 204
    assert (await scim.call("GET", f"/Users/{user['id']}")).status_code == 404
    assert (await scim.call("DELETE", f"/Users/{user['id']}")).status_code == 404


async def test_filters_and_pagination(scim: Scim) -> None:
    for i in range(5):
        r = await scim.call("POST", "/Users", json=user_body(f"user{i}", f"ext-{i}", displayName=f"User {i}"))
        assert r.status_code == 201
    one = (await scim.call("GET", "/Users", params={"filter": 'userName eq "USER3"'})).json()
    assert one["totalResults"] == 1 and one["Resources"][0]["userName"] == "user3"
    ext = (await scim.call("GET", "/Users", params={"filter": 'externalId eq "ext-2"'})).json()
    assert [r["userName"] for r in ext["Resources"]] == ["user2"]
    disp = (await scim.call("GET", "/Users", params={"filter": 'displayName eq "User 4"'})).json()
    assert [r["userName"] for r in disp["Resources"]] == ["user4"]
    both = (await scim.call("GET", "/Users", params={"filter": 'userName sw "user" and emails[type eq "work"]'})).json()
    assert both["totalResults"] == 5
    page = (await scim.call("GET", "/Users", params={"startIndex": "2", "count": "2"})).json()
    assert page["totalResults"] == 5 and page["startIndex"] == 2 and page["itemsPerPage"] == 2
    assert [r["userName"] for r in page["Resources"]] == ["user1", "user2"]
    only = (await scim.call("GET", "/Users", params={"attributes": "userName", "count": "1"})).json()
    assert set(only["Resources"][0]) == {"schemas", "id", "userName"}
    bad = await scim.call("GET", "/Users", params={"filter": "userName eq"})
    assert bad.status_code == 400 and bad.json()["scimType"] == "invalidFilter"
    search = await scim.call("POST", "/Users/.search", json={"filter": 'userName eq "user0"'})
    assert search.json()["totalResults"] == 1


async def test_groups_members_and_patch(scim: Scim) -> None:
    ids = []
    for name in ("ann", "bob", "cat"):
        ids.append((await scim.call("POST", "/Users", json=user_body(name))).json()["id"])
    created = await scim.call(
        "POST", "/Groups", json={"schemas": [GROUP], "displayName": "Eng", "members": [{"value": ids[0]}]}
    )
    assert created.status_code == 201, created.text
    group = created.json()
    assert [m["value"] for m in group["members"]] == [ids[0]]

    add = {
        "schemas": [PATCH],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": ids[1]}, {"value": ids[2]}]}],
    }
    r = await scim.call("PATCH", f"/Groups/{group['id']}", json=add)
    assert r.status_code == 200, r.text
    assert sorted(m["value"] for m in r.json()["members"]) == sorted(ids)

    remove = {"schemas": [PATCH], "Operations": [{"op": "remove", "path": f'members[value eq "{ids[0]}"]'}]}
    r = await scim.call("PATCH", f"/Groups/{group['id']}", json=remove)
    assert sorted(m["value"] for m in r.json()["members"]) == sorted(ids[1:])

    rename = {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"displayName": "Engineering"}}]}
    r = await scim.call("PATCH", f"/Groups/{group['id']}", json=rename)
    assert r.json()["displayName"] == "Engineering"

    with scim.runtime.db.session() as session:
        row = session.exec(select(DirectoryGroup).where(DirectoryGroup.external_id == group["id"])).one()
        members = session.exec(
            select(DirectoryMembership.account_external_id).where(DirectoryMembership.group_external_id == group["id"])
        ).all()
    assert row.name == "Engineering" and sorted(members) == sorted(ids[1:])

    user = (await scim.call("GET", f"/Users/{ids[1]}")).json()
    assert [(g["value"], g["display"], g["type"]) for g in user["groups"]] == [(group["id"], "Engineering", "direct")]
    assert user["groups"][0]["$ref"].endswith(f"/Groups/{group['id']}")
    found = (await scim.call("GET", "/Groups", params={"filter": 'displayName eq "engineering"'})).json()
    assert found["totalResults"] == 1

    unknown = await scim.call(
        "PATCH",
        f"/Groups/{group['id']}",
        json={"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": "nope"}]}]},
    )
    assert unknown.status_code == 400 and unknown.json()["scimType"] == "invalidValue"

    await scim.call("DELETE", f"/Users/{ids[2]}")
    r = (await scim.call("GET", f"/Groups/{group['id']}")).json()
    assert [m["value"] for m in r["members"]] == [ids[1]]
    assert (await scim.call("DELETE", f"/Groups/{group['id']}")).status_code == 204
    with scim.runtime.db.session() as session:
        assert not session.exec(select(DirectoryMembership)).all()


async def test_tenant_isolation(scim: Scim) -> None:
    user = (await scim.call("POST", "/Users", json=user_body("alice"))).json()
    listed = (await scim.call("GET", "/Users", scim.b)).json()
    assert listed["totalResults"] == 0
    assert (await scim.call("GET", f"/Users/{user['id']}", scim.b)).status_code == 404
    assert (await scim.call("DELETE", f"/Users/{user['id']}", scim.b)).status_code == 404
    # the same userName is free in another integration
    assert (await scim.call("POST", "/Users", scim.b, json=user_body("alice"))).status_code == 201
    # B's bearer on A's URL
    crossed = await scim.client.get(scim.path(scim.a, "/Users"), headers=scim.auth(scim.b))
    assert crossed.status_code == 401


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}],
)
async def test_wrong_token_is_401(scim: Scim, headers: dict[str, str]) -> None:
    r = await scim.client.get(scim.path(scim.a, "/Users"), headers=headers)
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/scim+json")
    assert r.json()["schemas"] == [ERROR] and r.json()["status"] == "401"
    unknown = await scim.client.get("/v1/scim/" + "x" * 43 + "/v2/Users", headers=scim.auth(scim.a))
    assert unknown.status_code == 401


async def test_discovery(scim: Scim) -> None:
    spc = (await scim.call("GET", "/ServiceProviderConfig")).json()
    assert spc["patch"]["supported"] is True and spc["filter"]["supported"] is True
    types = (await scim.call("GET", "/ResourceTypes")).json()
    assert {r["id"] for r in types["Resources"]} == {"User", "Group"}
    schemas = (await scim.call("GET", "/Schemas")).json()
    assert {s["id"] for s in schemas["Resources"]} == {USER, GROUP}
    assert (await scim.call("GET", f"/Schemas/{USER}")).json()["name"] == "User"
    assert (await scim.call("POST", "/Schemas", json={})).status_code == 405
    assert (await scim.call("GET", "/Widgets")).status_code == 404


async def test_connect_over_http_for_server_principals_only(database: Database) -> None:
    from engine.api import create_app
    from engine.api.principal import create_api_key

    runtime = make_runtime(database)
    server_key, _ = create_api_key(runtime.db, tenant="t9", role="server")
    user_key, _ = create_api_key(runtime.db, tenant="t9", role="user", owner="o9")
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://tether.test") as client:
        made = await client.post(
            "/v1/scim-connections", json={"owner_id": "o9"}, headers={"Authorization": f"Bearer {server_key}"}
        )
        assert made.status_code == 200, made.text
        view = made.json()
        token = view["base_url"].rsplit("/v1/scim/", 1)[1].split("/")[0]
        listed = await client.get(
            f"/v1/scim/{token}/v2/Users", headers={"Authorization": f"Bearer {view['bearer_token']}"}
        )
        assert listed.status_code == 200 and listed.json()["totalResults"] == 0
        refused = await client.post("/v1/scim-connections", json={}, headers={"Authorization": f"Bearer {user_key}"})
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden")


async def test_scim_writes_and_deletes_are_in_the_change_feed(scim: Scim) -> None:
    """Every SCIM write that changes a row and every delete (a user, a group, a dropped member) is a change; a
    mirror built from the changes alone equals the directory tables."""
    from engine.store.tables import RecordChange
    from ingest.changes import record_state, table_of

    ids = [(await scim.call("POST", "/Users", json=user_body(name))).json()["id"] for name in ("ann", "bob")]
    body = {"schemas": [GROUP], "displayName": "Eng", "members": [{"value": i} for i in ids]}
    group = (await scim.call("POST", "/Groups", json=body)).json()
    remove = {"schemas": [PATCH], "Operations": [{"op": "remove", "path": f'members[value eq "{ids[0]}"]'}]}
    assert (await scim.call("PATCH", f"/Groups/{group['id']}", json=remove)).status_code == 200
    assert (await scim.call("DELETE", f"/Users/{ids[1]}")).status_code == 204

    with scim.runtime.db.session() as session:
        feed = session.exec(select(RecordChange).where(RecordChange.tenant_id == "t1").order_by(RecordChange.seq)).all()
    assert [c.seq for c in feed] == list(range(1, len(feed) + 1))
    removed = [(c.schema_name, c.record_id) for c in feed if c.op == "remove"]
    assert sorted(s for s, _ in removed) == ["directory_account", "directory_membership", "directory_membership"]
    built: dict[tuple[str, int], object] = {}
    for change in feed:
        if change.op == "remove":
            built.pop((change.schema_name, change.record_id))
        else:
            built[(change.schema_name, change.record_id)] = change.record
    tables = {}
    with scim.runtime.db.engine.connect() as connection:
        for schema in ("directory_account", "directory_group", "directory_membership"):
            table = table_of(schema)
            for row in connection.execute(select(table).where(table.c.tenant_id == "t1")).mappings():
                tables[(schema, row["id"])] = record_state(row)
    assert built == tables and len(tables) == 2  # ann and the group; no membership left
