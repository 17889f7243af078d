"""``GET /v1/changes`` against a runtime on both databases: a mirror built from the feed alone equals the tables,
resume from any point, tenant and owner scoping, bad parameters, complete-snapshot removal through the executor,
and (PostgreSQL) concurrent writers of one tenant read by a poller that must never miss a change."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from engine.api import create_app
from engine.api.principal import create_api_key
from engine.custody.crypto import generate_master_key
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database
from engine.store.tables import Integration, IntegrationStatus
from ingest.changes import record_state, table_of
from ingest.pipeline import IngestContext
from support.changes_definition import EMITS

SCHEMAS = ("directory_account", "directory_group", "directory_membership")


class World:
    def __init__(self, runtime: Runtime, client: TestClient) -> None:
        self.runtime = runtime
        self.client = client
        self.keys: dict[tuple[str, str, str], dict[str, str]] = {}

    def headers(self, tenant: str = "t1", role: str = "server", owner: str = "") -> dict[str, str]:
        if (tenant, role, owner) not in self.keys:
            plain, _ = create_api_key(self.runtime.db, tenant=tenant, role=role, owner=owner)  # type: ignore[arg-type]
            self.keys[(tenant, role, owner)] = {"Authorization": f"Bearer {plain}"}
        return self.keys[(tenant, role, owner)]

    def integration(self, tenant: str = "t1", owner: str = "u1") -> str:
        with self.runtime.db.session() as session:
            row = Integration(
                tenant_id=tenant, owner_id=owner, definition_id="listing_test", status=IntegrationStatus.connected
            )
            session.add(row)
        return row.id

    async def listing(self, integration_id: str, operation: str = "DirectoryListing", **config: Any) -> Any:
        done = await self.runtime.executor.run_inline(integration_id, operation, config=config)
        return done.run

    def read_all(self, headers: dict[str, str], after: int = 0, limit: int = 3, **params: str) -> list[dict[str, Any]]:
        """Page through the feed from ``after`` with small pages, as a host would."""
        out: list[dict[str, Any]] = []
        while True:
            page = self.get(headers, after=str(after), limit=str(limit), **params)
            out.extend(page["changes"])
            if not page["changes"]:
                assert page["next_after"] == after
                return out
            after = page["next_after"]

    def get(self, headers: dict[str, str], **params: str) -> dict[str, Any]:
        response = self.client.get("/v1/changes", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    def tables(self, tenant: str = "t1") -> dict[tuple[str, int], dict[str, Any]]:
        out = {}
        with self.runtime.db.engine.connect() as connection:
            for schema in SCHEMAS:
                table = table_of(schema)
                for row in connection.execute(select(table).where(table.c.tenant_id == tenant)).mappings():
                    out[(schema, row["id"])] = record_state(row)
        return out


def mirror(feed: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    built: dict[tuple[str, int], dict[str, Any]] = {}
    for change in feed:
        key = (change["schema"], change["record_id"])
        if change["op"] == "remove":
            assert change["record"] is None
            built.pop(key, None)
        else:
            built[key] = change["record"]
    return built


def _world(database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("TETHER_SECRET_MASTER_KEY", generate_master_key())
    settings = Settings(
        database_url=database.url, definition_modules="support.changes_definition", state_dir=str(tmp_path)
    )
    runtime = Runtime.start(settings)
    try:
        with TestClient(create_app(runtime)) as client:
            yield World(runtime, client)
    finally:
        runtime.close()


@pytest.fixture
def world(database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield from _world(database, tmp_path, monkeypatch)


@pytest.fixture
def sqlite_world(sqlite_database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield from _world(sqlite_database, tmp_path, monkeypatch)


@pytest.fixture
def pg_world(postgres_database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield from _world(postgres_database, tmp_path, monkeypatch)


FULL = {
    "accounts": {"a1": "a1@x.test", "a2": "a2@x.test", "a3": "a3@x.test"},
    "groups": ["g1", "g2"],
    "members": [["a1", "g1"], ["a2", "g1"], ["a3", "g2"]],
}


async def test_a_mirror_of_the_feed_equals_the_tables(world: World) -> None:
    integration = world.integration()
    server = world.headers()
    run = await world.listing(integration, **FULL)
    assert run.status == "succeeded", run.error_message
    feed = world.read_all(server)
    assert [c["seq"] for c in feed] == list(range(1, 9))
    assert [c["schema"] for c in feed[:3]] == ["directory_account"] * 3
    assert set(feed[0]) == {"seq", "schema", "record_id", "integration_id", "op", "record", "changed_at"}
    assert mirror(feed) == world.tables()

    # Updates, and a listing that leaves out a2 (and so its membership) and g2 (and a3's membership of it).
    run = await world.listing(
        integration, accounts={"a1": "new@x.test", "a3": "a3@x.test"}, groups=["g1"], members=[["a1", "g1"]]
    )
    assert run.status == "succeeded", run.error_message
    tail = world.read_all(server, after=8)
    assert [c["op"] for c in tail] == ["upsert", "remove", "remove", "remove", "remove"]
    assert tail[0]["record"]["email"] == "new@x.test"
    assert sorted(c["schema"] for c in tail if c["op"] == "remove") == [
        "directory_account",
        "directory_group",
        "directory_membership",
        "directory_membership",
    ]
    assert mirror(world.read_all(server)) == world.tables()
    accounts = sorted(r["external_id"] for k, r in world.tables().items() if k[0] == "directory_account")
    assert accounts == ["a1", "a3"]

    # The same listing again changes nothing, so the feed does not move.
    await world.listing(
        integration, accounts={"a1": "new@x.test", "a3": "a3@x.test"}, groups=["g1"], members=[["a1", "g1"]]
    )
    assert world.get(server, after="13")["changes"] == []


async def test_a_failed_or_partial_listing_removes_nothing(world: World) -> None:
    integration = world.integration()
    server = world.headers()
    await world.listing(integration, **FULL)
    before = world.tables()
    failed = await world.listing(integration, accounts={"a1": "a1@x.test"}, fail=True)
    assert failed.status == "failed"
    partial = await world.listing(integration, "PartialListing", accounts={"a1": "a1@x.test"})
    assert partial.status == "succeeded"
    assert world.tables() == before
    assert all(c["op"] == "upsert" for c in world.read_all(server))


async def test_resume_from_a_mid_point(world: World) -> None:
    integration = world.integration()
    server = world.headers()
    await world.listing(integration, **FULL)
    everything = world.read_all(server)
    page = world.get(server, after="0", limit="5")
    assert page["next_after"] == 5 and [c["seq"] for c in page["changes"]] == [1, 2, 3, 4, 5]
    # A host that crashed after applying seq 5 asks again from there and gets exactly the rest.
    assert world.read_all(server, after=page["next_after"]) == everything[5:]
    assert world.get(server, after="8")["next_after"] == 8


async def test_filters_and_scoping(world: World) -> None:
    mine = world.integration(owner="u1")
    theirs = world.integration(owner="u2")
    other_tenant = world.integration(tenant="t2", owner="u1")
    await world.listing(mine, **FULL)
    await world.listing(theirs, accounts={"b1": "b1@x.test"})
    await world.listing(other_tenant, accounts={"c1": "c1@x.test"})
    server = world.headers()
    assert len(world.read_all(server)) == 9
    assert {c["integration_id"] for c in world.read_all(server, integration_id=theirs)} == {theirs}
    groups = world.read_all(server, schema="directory_group")
    assert len(groups) == 2 and all(c["schema"] == "directory_group" for c in groups)
    user = world.headers(role="user", owner="u2")
    assert [c["record"]["external_id"] for c in world.read_all(user)] == ["b1"]
    hidden = world.client.get("/v1/changes", params={"integration_id": mine}, headers=user)
    assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "not_found"
    t2 = world.read_all(world.headers(tenant="t2"))
    assert [(c["seq"], c["record"]["external_id"]) for c in t2] == [(1, "c1")]  # t2's own sequence
    elsewhere = world.client.get("/v1/changes", params={"integration_id": other_tenant}, headers=server)
    assert elsewhere.status_code == 404
    unknown = world.client.get("/v1/changes", params={"schema": "nope"}, headers=server)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    assert world.client.get("/v1/changes").status_code == 401


BAD_PARAMETERS = [
    ({"after": "-1"}, "invalid_after"),
    ({"after": "²"}, "invalid_after"),
    ({"after": "1_0"}, "invalid_after"),
    ({"after": " 1"}, "invalid_after"),
    ({"after": "9" * 19}, "invalid_after"),
    ({"after": ""}, "invalid_after"),
    ({"limit": "0"}, "invalid_limit"),
    ({"limit": "1001"}, "invalid_limit"),
    ({"limit": "٣"}, "invalid_limit"),
    ({"limit": "1.5"}, "invalid_limit"),
]


def test_bad_parameters_are_422_with_a_stable_code(sqlite_world: World) -> None:
    for params, code in BAD_PARAMETERS:
        response = sqlite_world.client.get("/v1/changes", params=params, headers=sqlite_world.headers())
        assert (response.status_code, response.json()["error"]["code"]) == (422, code), params


def test_concurrent_writers_of_one_tenant_commit_in_sequence_order(pg_world: World) -> None:
    """Writers of one tenant on PostgreSQL, a poller reading the feed all along: what the poller read, page after
    page, is exactly 1..N with no gap (a reader that moved past a sequence not yet committed would show one), and
    its mirror equals the tables at the end."""
    world = pg_world
    integrations = [world.integration(owner=f"u{i}") for i in range(4)]
    pipeline = world.runtime.executor.pipeline()
    errors: list[BaseException] = []
    from engine import Payload

    def write(integration_id: str) -> None:
        ctx = IngestContext("t1", integration_id, "listing_test", emits=EMITS)
        try:
            for round_ in range(25):
                # Each page updates the previous page's accounts and adds new ones: upserts and updates interleave.
                page = [
                    Payload("directory_account", {"id": f"a{i}", "email": f"r{round_}@x.test"}, "user")
                    for i in range(round_, round_ + 8)
                ]
                pipeline.process(ctx, page)
        except BaseException as exc:  # surfaced by the assertion below, with the thread's exception
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in integrations]
    for thread in threads:
        thread.start()
    read: list[dict[str, Any]] = []
    after, polls_during_writes = 0, 0
    while any(t.is_alive() for t in threads):
        page = world.get(world.headers(), after=str(after), limit="1000")  # at the head: where a gap would show
        polls_during_writes += 1
        read.extend(page["changes"])
        after = page["next_after"]
    for thread in threads:
        thread.join()
    assert not errors, errors
    read.extend(world.read_all(world.headers(), after=after, limit=50))
    seqs = [c["seq"] for c in read]
    assert seqs == list(range(1, len(seqs) + 1))
    assert polls_during_writes > 1
    assert mirror(read) == world.tables()
    assert len(world.tables()) == 4 * 32


async def test_a_cursor_before_the_retained_window_is_410_and_a_resync_misses_nothing(world: World) -> None:
    """Retention prunes the oldest changes; a reader behind them is refused with a stable code (never handed a
    page with changes missing), and a host that resyncs from the records and follows from the named ``after``
    mirrors the tables again."""
    from sqlalchemy import update

    from engine.store.retention import prune_changes
    from engine.store.tables import RecordChange, utcnow

    integration = world.integration()
    server = world.headers()
    await world.listing(integration, **FULL)
    assert len(world.read_all(server)) == 8
    old = utcnow() - timedelta(days=40)
    with world.runtime.db.engine.begin() as connection:  # the first five changes were written 40 days ago
        connection.execute(update(RecordChange).where(RecordChange.seq <= 5).values(changed_at=old))
    assert prune_changes(world.runtime.db, utcnow() - timedelta(days=30)) == 5
    for after in ("0", "4"):
        refused = world.client.get("/v1/changes", params={"after": after}, headers=server)
        assert refused.status_code == 410, refused.text
        error = refused.json()["error"]
        assert error["code"] == "changes_cursor_expired"
        assert "/v1/records" in error["message"] and "after=8" in error["message"]
    # A reader that had applied seq 5 lost nothing: it reads on as before.
    assert [c["seq"] for c in world.read_all(server, after=5)] == [6, 7, 8]
    # Resync: the records as they are after the refusal, then (once more changed) the feed from the named after.
    resynced = world.tables()
    await world.listing(integration, accounts={"a1": "a1@x.test"}, groups=["g1"], members=[["a1", "g1"]])
    followed = world.read_all(server, after=8)
    assert {c["op"] for c in followed} == {"remove"}
    for change in followed:
        key = (change["schema"], change["record_id"])
        if change["op"] == "remove":
            resynced.pop(key, None)
        else:
            resynced[key] = change["record"]
    assert resynced == world.tables() and len(resynced) == 3
    # The other tenant's feed was not touched by the first's pruning horizon.
    other = world.integration(tenant="t2")
    await world.listing(other, accounts={"c1": "c1@x.test"})
    assert [c["seq"] for c in world.read_all(world.headers(tenant="t2"))] == [1]
