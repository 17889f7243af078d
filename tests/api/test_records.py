"""``GET /v1/records/{schema}`` and ``GET /v1/records/{schema}/{id}`` (issue 19, Records API).

Real runtime and app over SQLite and PostgreSQL; the rows are written by the executor's own ingest pipeline from the
sample definition's ``asset``/``item`` payloads (its CEL mapping), as an ``ItemSync`` run would write them.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.api import create_app
from engine.api.principal import create_api_key, sign_principal
from engine.authoring.operations import Payload
from engine.runtime import Runtime
from engine.store.database import Database
from engine.store.tables import Integration
from ingest.catalog import catalog
from ingest.pipeline import IngestContext, IngestPipeline, python_mapping
from support import sample_definition as sample
from support.sample_runtime import start_sample_runtime

PRINCIPAL_SECRET = "principal-signing-secret-for-records"
BASE = "http://tether.test"


def items(start: int, count: int, name: str = "item") -> list[Payload]:
    return [
        Payload("asset", {"kind": "item", "id": f"a-{i}", "name": f"{name} {i}"}, variant="item")
        for i in range(start, start + count)
    ]


class World:
    def __init__(self, runtime: Runtime, client: httpx.AsyncClient) -> None:
        self.runtime = runtime
        self.client = client
        self.server = self.key("t1")

    def key(self, tenant: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {create_api_key(self.runtime.db, tenant=tenant, role='server')[0]}"}

    def user(self, owner: str, tenant: str = "t1") -> dict[str, str]:
        return {"X-Tether-Principal": sign_principal(PRINCIPAL_SECRET, tenant=tenant, role="user", owner=owner)}

    async def integration(self, owner: str, headers: dict[str, str] | None = None) -> str:
        created = await self.client.post(
            "/v1/integrations", json={"definition_id": "sample", "owner_id": owner}, headers=headers or self.server
        )
        assert created.status_code == 201, created.text
        return created.json()["id"]

    def ingest(self, integration_id: str, payloads: list[Payload], tenant: str = "t1") -> None:
        ctx = IngestContext(
            tenant_id=tenant, integration_id=integration_id, definition_id="sample", emits=sample.ItemSync.emits
        )
        result = self.runtime.executor.pipeline().process(ctx, payloads)
        assert result.persisted == len(payloads), result.rejects

    async def get(self, path: str, headers: dict[str, str] | None = None, **params: Any) -> httpx.Response:
        return await self.client.get(path, params=params, headers=self.server if headers is None else headers)

    async def walk(
        self, limit: int, between: Any = None, headers: dict[str, str] | None = None, **params: Any
    ) -> list[dict[str, Any]]:
        """Every page of ``asset`` records; ``between(n)`` runs after the n-th page."""
        seen: list[dict[str, Any]] = []
        cursor = None
        for page_number in range(1, 1000):
            extra = {"cursor": cursor} if cursor else {}
            page = await self.get("/v1/records/asset", headers, limit=limit, **params, **extra)
            assert page.status_code == 200, page.text
            body = page.json()
            assert len(body["data"]) <= limit
            seen.extend(body["data"])
            cursor = body["next_cursor"]
            if cursor is None:
                return seen
            if between is not None:
                between(page_number)
        raise AssertionError("the pages never ended")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def world(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[World]:
    database: Database = request.getfixturevalue(f"{request.param}_database")
    runtime = start_sample_runtime(monkeypatch, database.url, str(tmp_path), secret_principal_key=PRINCIPAL_SECRET)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime)), base_url=BASE) as client:
        yield World(runtime, client)
    runtime.close()


def error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def ids(records: list[dict[str, Any]]) -> list[str]:
    return [r["source_identifier"] for r in records]


async def test_records_carry_the_models_fields_and_are_read_one_by_one(world: World) -> None:
    iid = await world.integration("alice")
    world.ingest(iid, items(0, 3))
    page = await world.get("/v1/records/asset")
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["next_cursor"] is None and ids(body["data"]) == ["a-0", "a-1", "a-2"]
    declared = {c.name for c in catalog()["asset"].model.__table__.columns} - {"tenant_id"}  # type: ignore[attr-defined]
    first = body["data"][0]
    assert set(first) == declared
    assert first["integration_id"] == iid and first["definition_id"] == "sample"
    assert (first["name"], first["asset_type"]) == ("item 0", "item")  # what the sample's CEL map made of it

    one = await world.get(f"/v1/records/asset/{first['id']}")
    assert one.status_code == 200 and one.json() == first
    assert error(await world.get("/v1/records/asset/999999")) == (404, "not_found")
    assert error(await world.get("/v1/records/contact/" + str(first["id"]))) == (404, "not_found")


async def test_pages_are_stable_while_ingest_inserts_and_updates_between_them(world: World) -> None:
    iid = await world.integration("alice")
    world.ingest(iid, items(0, 30))
    added = iter(range(100, 1000, 5))

    def meanwhile(page_number: int) -> None:
        # New rows, and updates of rows both already returned and not yet returned (an upsert bumps updated_at).
        world.ingest(iid, items(next(added), 5, name="new"))
        world.ingest(iid, items(0, 30, name=f"renamed {page_number}"))

    seen = await world.walk(7, between=meanwhile)
    returned = ids(seen)
    assert len(returned) == len(set(returned)), "a record came twice"
    assert {f"a-{i}" for i in range(30)} <= set(returned), "a record that existed before the first page was missed"
    assert [r["id"] for r in seen] == sorted(r["id"] for r in seen)


async def test_filters(world: World) -> None:
    alice, bob = await world.integration("alice"), await world.integration("bob")
    world.ingest(alice, items(0, 4))
    world.ingest(bob, items(10, 2))
    later = items(20, 3)
    world.ingest(bob, later)
    assert len(await world.walk(2)) == 9
    assert set(ids(await world.walk(3, integration_id=bob))) == {"a-10", "a-11", "a-20", "a-21", "a-22"}
    assert set(ids(await world.walk(3, owner_id="alice"))) == {f"a-{i}" for i in range(4)}
    assert await world.walk(3, owner_id="carol") == [] and await world.walk(3, definition_id="slack") == []
    assert len(await world.walk(50, definition_id="sample")) == 9
    newest = (await world.get("/v1/records/asset", integration_id=bob)).json()["data"][-1]
    since = await world.walk(50, updated_since=newest["updated_at"])
    assert set(ids(since)) == {"a-20", "a-21", "a-22"}
    assert await world.walk(50, updated_since="2999-01-01T00:00:00+02:00") == []
    assert len(await world.walk(50, updated_since="2000-01-01T00:00:00.123456789Z")) == 9


async def test_scope_tenant_and_owner(world: World) -> None:
    alice, bob = await world.integration("alice"), await world.integration("bob")
    other_headers = world.key("t2")
    other = await world.integration("alice", headers=other_headers)  # the same owner name in another tenant
    world.ingest(alice, items(0, 2))
    world.ingest(bob, items(10, 2))
    world.ingest(other, items(20, 2), tenant="t2")

    assert set(ids(await world.walk(50))) == {"a-0", "a-1", "a-10", "a-11"}
    as_alice = world.user("alice")
    page = (await world.get("/v1/records/asset", headers=as_alice)).json()
    assert ids(page["data"]) == ["a-0", "a-1"]
    # A user cannot widen the scope with a filter: another owner's integration or owner_id is simply empty.
    assert (await world.get("/v1/records/asset", headers=as_alice, integration_id=bob)).json()["data"] == []
    assert (await world.get("/v1/records/asset", headers=as_alice, owner_id="bob")).json()["data"] == []
    assert (await world.get("/v1/records/asset", headers=other_headers)).json()["data"][0]["integration_id"] == other

    bobs = (await world.get("/v1/records/asset", integration_id=bob)).json()["data"][0]["id"]
    others = (await world.get("/v1/records/asset", headers=other_headers)).json()["data"][0]["id"]
    assert error(await world.get(f"/v1/records/asset/{bobs}", headers=as_alice)) == (404, "not_found")
    assert error(await world.get(f"/v1/records/asset/{others}")) == (404, "not_found")
    assert (await world.get(f"/v1/records/asset/{bobs}")).status_code == 200
    assert error(await world.get("/v1/records/asset", headers={})) == (401, "unauthenticated")


async def test_an_owner_with_several_integrations_pages_across_them_in_id_order(world: World) -> None:
    # A second integration of alice's (another definition: one per owner and definition), fed through the same
    # pipeline with a Python mapping standing in for github_app's own.
    sample_one = await world.integration("alice")
    row = Integration(tenant_id="t1", owner_id="alice", definition_id="github_app")
    with world.runtime.db.session() as session:
        session.add(row)
        session.flush()
        github_one = row.id
    mapping = python_mapping("asset", "item", map=lambda a: {**a["payload"], "source_identifier": a["payload"]["id"]})
    pipeline = IngestPipeline(
        world.runtime.registry, world.runtime.db, mappings={("github_app", "asset", "item"): mapping}
    )

    def github(start: int, count: int) -> None:
        ctx = IngestContext(
            tenant_id="t1", integration_id=github_one, definition_id="github_app", emits=[("asset", "item")]
        )
        payloads = [
            Payload("asset", {"id": f"g-{i}", "name": "g", "asset_type": "repo"}, variant="item")
            for i in range(start, start + count)
        ]
        assert pipeline.process(ctx, payloads).persisted == count

    for start in range(0, 12, 3):  # interleaved ids
        world.ingest(sample_one, items(start, 3))
        github(start, 3)
    world.ingest(await world.integration("bob"), items(100, 5))
    added = iter(range(200, 1000, 2))

    def meanwhile(_: int) -> None:
        n = next(added)
        world.ingest(sample_one, items(n, 2))
        github(n, 2)

    as_alice = {"headers": world.user("alice")}
    seen = await world.walk(5, between=meanwhile, **as_alice)
    returned = ids(seen)
    assert len(returned) == len(set(returned))
    assert {f"{p}-{i}" for p in "ag" for i in range(12)} <= set(returned)
    assert not {f"a-{i}" for i in range(100, 105)} & set(returned)
    assert [r["id"] for r in seen] == sorted(r["id"] for r in seen)
    assert {r["definition_id"] for r in seen} == {"sample", "github_app"}
    only_github = await world.walk(4, definition_id="github_app", owner_id="alice")
    assert {r["integration_id"] for r in only_github} == {github_one}


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


#: Cursors this API never returns: not base64url, not ours, a negative or oversized id, another schema's.
BAD_CURSORS = (
    "garbage",
    "!!!!",
    "é",
    _b64("r1:asset:-1"),
    _b64("r1:asset:1²"),
    _b64("r1:asset:" + "9" * 19),
    _b64("r1:asset:"),
    _b64("r2:asset:5"),
    _b64("r1:contact:5"),
    _b64("\x00\xff"),
    "x" * 5000,
)
#: Not RFC 3339 with an offset, or not a real instant.
BAD_TIMESTAMPS = (
    "2026-01-01",
    "2026-01-01T00:00:00",
    "2026-01-01T00:00:00+0100",
    "2026-13-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "2026-01-01T24:00:00Z",
    "2026-01-01T00:00:00+25:00",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "yesterday",
    "\uff12\uff10\uff12\uff16-01-01T00:00:00Z"  # fullwidth digits,
    "",
)


async def test_bad_cursors_timestamps_schemas_ids_and_limits_are_4xx(world: World) -> None:
    await world.integration("alice")
    for cursor in BAD_CURSORS:
        assert error(await world.get("/v1/records/asset", cursor=cursor)) == (422, "invalid_cursor"), cursor
    for since in BAD_TIMESTAMPS:
        assert error(await world.get("/v1/records/asset", updated_since=since)) == (422, "invalid_input"), since
    assert error(await world.get("/v1/records/nope")) == (404, "not_found")
    assert error(await world.get("/v1/records/nope/1")) == (404, "not_found")
    assert error(await world.get("/v1/records/nope/abc")) == (404, "not_found")
    for record_id in ("abc", "-1", "1²", "9" * 30, str(2**63)):
        assert error(await world.get(f"/v1/records/asset/{record_id}")) == (404, "not_found")
    for limit in ("0", "501", "\u0661"):
        assert error(await world.get("/v1/records/asset", limit=limit)) == (422, "invalid_input")
    assert (await world.get("/v1/records/asset", limit="500", unknown="ignored")).status_code == 200
