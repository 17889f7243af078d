"""Todoist: OAuth from ``todoist.toml``, a ``sync_token`` task sync into ``task`` against a local server answering
the documented API v1 shapes, the mapping against the official SDK's published fixtures and older API versions'
field names, and completing a task (respx)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from sqlmodel import select

from definitions.todoist import definition, operations
from definitions.todoist.oauth import OAUTH
from definitions.todoist.operations import CompleteTask, CompleteTaskConfig, TaskSync
from engine import (
    REMOVE,
    ClientContext,
    ConnectionContext,
    NoConfig,
    OperationContext,
    Payload,
    ProviderError,
    Revoke,
)
from engine.catalog.registry import Registry
from engine.kit.egress import LOOPBACK_ENV
from engine.store.database import Database
from engine.store.tables import RecordChange
from ingest.models.task import Task
from ingest.pipeline import IngestContext, IngestPipeline
from support.cassette_fixtures import response_fixture
from support.replay import Answer, Received, ReplayServer, replay_server

API = "https://api.todoist.com/api/v1"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "todoist"


def answer(name: str) -> httpx.Response:
    rec = response_fixture(FIXTURES, name)
    body = rec["body"]
    if isinstance(body, str):
        return httpx.Response(rec["status"], headers=rec["headers"], text=body)
    return httpx.Response(rec["status"], headers=rec["headers"], json=body)


def slot() -> Any:
    return OAUTH.slot.model_validate({"access_token": "todoist-token", "scopes": ["data:read"]})


def run(op: Any, config: Any = None, cursor: Any = None) -> tuple[Any, OperationContext]:
    async def go() -> tuple[Any, OperationContext]:
        async with OAUTH.client().build(ClientContext("int_1", slot(), None, None)) as client:
            ctx = OperationContext("int_1", "t", config or NoConfig(), client, None, None, cursor=cursor)
            return await op().run(ctx), ctx

    return asyncio.run(go())


def test_definition_registers_with_generated_oauth() -> None:
    Registry().register(definition)
    connection = definition.connections[0]
    assert connection.connection_id() == "TodoistOAuth" and connection.disconnect == Revoke(OAUTH.slot)
    assert connection.auth.scopes == ("data:read",)  # type: ignore[union-attr]
    assert connection.auth.upgrade_scopes == ("data:read_write",)  # type: ignore[union-attr]
    assert (definition.mode, definition.onboarding) == ("optional", "after_auth")
    assert CompleteTask.policy.access == "write" and TaskSync.policy.access == "read"


# -- the task sync, against a local server answering Todoist's documented Sync API v1 shapes ------------------


@pytest.fixture
def todoist(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ReplayServer, list[Answer]]]:
    """A local Todoist: each ``POST /api/v1/sync`` gets the next queued answer."""
    queue: list[Answer] = []

    def handle(request: Received) -> Answer:
        assert (request.method, request.path) == ("POST", "/api/v1/sync")
        return queue.pop(0)

    monkeypatch.setenv(LOOPBACK_ENV, "1")
    with replay_server(handle) as server:
        monkeypatch.setattr(operations, "API", f"{server.url}/api/v1")
        yield server, queue


def recorded_answer(name: str) -> Answer:
    rec = response_fixture(FIXTURES, name)
    return Answer(rec["status"], rec["body"], {k: v for k, v in rec["headers"].items() if k != "Content-Type"})


def sync(cursor: Any = None) -> tuple[list[Payload], OperationContext]:
    async def go() -> tuple[list[Payload], OperationContext]:
        async with OAUTH.client().build(ClientContext("int_1", slot(), None, None)) as client:
            ctx = OperationContext("int_1", "t", NoConfig(), client, None, None, cursor=cursor)
            return [p async for p in TaskSync().ingest(ctx)], ctx

    return asyncio.run(go())


def ingest(payloads: list[Payload]) -> list[Any]:
    registry = Registry()
    registry.register(definition)
    ctx = IngestContext(tenant_id="t", integration_id="int_1", definition_id="todoist", emits=TaskSync.emits,
                        origin="TaskSync")
    outcomes = IngestPipeline(registry).dry_run(ctx, payloads)
    assert [o.status for o in outcomes] == ["mapped"] * len(payloads), [o.reason for o in outcomes]
    return [Task.model_validate({**o.object.model_dump(), "tenant_id": "t", "integration_id": "int_1",
                                 "definition_id": "todoist"}) for o in outcomes]


def test_first_sync_is_full_stores_the_sync_token_and_maps_tasks(todoist: Any) -> None:
    server, queue = todoist
    queue.append(recorded_answer("sync_full"))
    payloads, ctx = sync()
    [request] = server.received
    assert request.form() == {"sync_token": ["*"], "resource_types": ['["items"]']}
    assert request.headers["authorization"] == "Bearer todoist-token"
    assert ctx.next_cursor == "TnYUZEpuzf2FMA9qzyY3j4xky6dXiYejmSO85S5paZ_a9y1FI85mBbIWZGpW"
    assert [(p.schema, p.variant) for p in payloads] == [("task", "task")] * 2
    milk, plants = ingest(payloads)
    assert (milk.external_id, milk.title, milk.description, milk.project_id, milk.priority, milk.labels) == (
        "6X7rM8997g3RQmvh", "Buy milk", None, "6Jf8VQXxpwv56VQ7", "low", ["errands"])
    assert (milk.due_at, milk.all_day_due, milk.recurring, milk.completed) == (
        datetime(2024, 5, 3, tzinfo=UTC), True, False, False)
    assert milk.source_created_at == datetime(2024, 5, 1, 9, tzinfo=UTC)
    assert milk.url == "https://app.todoist.com/app/task/6X7rM8997g3RQmvh"
    assert (plants.priority, plants.recurring, plants.all_day_due) == ("urgent", True, False)
    assert plants.due_at == datetime(2024, 5, 2, 8, tzinfo=UTC)
    assert plants.attributes["due_timezone"] == "Europe/Berlin" and plants.attributes["due_floating"] is False
    assert plants.attributes["due_string"] == "every day at 10" and plants.attributes["deleted"] is False


def test_next_sync_sends_the_stored_token_and_maps_completions_and_deletions(todoist: Any) -> None:
    server, queue = todoist
    queue.append(recorded_answer("sync_incremental"))
    payloads, ctx = sync(cursor="TnYUZEpuzf2FMA9qzyY3j4xky6dXiYejmSO85S5paZ_a9y1FI85mBbIWZGpW")
    assert server.received[0].form()["sync_token"] == ["TnYUZEpuzf2FMA9qzyY3j4xky6dXiYejmSO85S5paZ_a9y1FI85mBbIWZGpW"]
    assert ctx.next_cursor == "Z9kXbGAZ9jPx-2c0Jxb9mx2ePrq2d2zRNqvjqDl6L1N4v4Ah0VYlQ9mSKD0e"
    assert [p.action for p in payloads] == ["", REMOVE]
    [done] = ingest(payloads[:1])
    assert (done.completed, done.completed_at, done.due_at, done.all_day_due) == (
        True, datetime(2024, 5, 2, 18, 30, tzinfo=UTC), None, None)
    # The deleted task came with only a few fields: enough for the key its row is removed by.
    registry = Registry()
    registry.register(definition)
    ctx = IngestContext(tenant_id="t", integration_id="int_1", definition_id="todoist", emits=TaskSync.emits)
    [removal] = IngestPipeline(registry).dry_run(ctx, payloads[1:])
    assert (removal.status, removal.remove, removal.keys) == ("mapped", True, ("6X7rfFVPjhvv84XG",))
    # Mapped without removing (a host's own use), it still lands, saying it is deleted.
    [tombstone] = ingest([Payload("task", payloads[1].data, variant="task")])
    assert (tombstone.title, tombstone.labels, tombstone.attributes["deleted"]) == ("Water the plants", [], True)


@pytest.mark.parametrize(("fixture", "code", "retry_after"), [("error_401", "unauthorized", None),
                                                               ("error_429", "rate_limited", 42.0)])
def test_sync_errors_keep_the_cursor(todoist: Any, fixture: str, code: str, retry_after: float | None) -> None:
    _, queue = todoist
    queue.append(recorded_answer(fixture))
    with pytest.raises(ProviderError) as failed:
        sync(cursor="old-token")
    assert (failed.value.code, failed.value.retry_after) == (code, retry_after)
    assert "abc123" not in str(failed.value)


@pytest.mark.parametrize("body", [{"items": []}, {"sync_token": "t", "items": {"id": "1"}}])
def test_a_sync_answer_without_a_token_or_with_odd_items_fails(todoist: Any, body: dict[str, Any]) -> None:
    _, queue = todoist
    queue.append(Answer(200, body))
    with pytest.raises(ProviderError):
        sync()


def test_the_sdks_published_v1_tasks_map_every_field() -> None:
    """The official SDK's own API v1 fixtures (``sdk_tasks.json``, source named inside): none of them carries
    ``checked`` or ``is_deleted``, and they use ``is_collapsed``, ``responsible_uid`` and ``added_by_uid``."""
    published = json.loads((FIXTURES / "sdk_tasks.json").read_text())
    assert "todoist-api-python" in published["source"]
    open_task, completed = ingest([Payload("task", t, variant="task") for t in published["tasks"]])
    assert (open_task.title, open_task.description, open_task.parent_id, open_task.assignee_id) == (
        "Some task content", "Some task description", "6X7rf9x6pv2FGghW", "2423523")
    assert (open_task.due_at, open_task.all_day_due, open_task.recurring) == (
        datetime(2016, 9, 1, tzinfo=UTC), True, True)
    assert open_task.source_created_at == datetime(2014, 9, 26, 8, 25, 5, tzinfo=UTC)
    assert open_task.source_updated_at == datetime(2016, 1, 2, 21, 0, 30, tzinfo=UTC)
    assert (open_task.completed, open_task.completed_at) == (False, None)
    assert open_task.attributes == {
        "todoist_priority": 1, "section_id": "3Ty8VQXxpwv28PK3", "creator_id": "34567",
        "due_string": "tomorrow at 12", "due_timezone": "Europe/Moscow", "due_floating": False,
        "deadline": "2016-09-01", "duration": {"amount": 60, "unit": "minute"}, "deleted": False}
    # Completion without ``checked``: the completion time says it.
    assert (completed.completed, completed.completed_at) == (True, datetime(2024, 2, 13, 10, tzinfo=UTC))


@pytest.mark.parametrize(("item", "expected"), [
    # REST v2 names (is_completed, created_at, assignee_id, url, due.datetime): the same fields land.
    ({"id": "2995104339", "content": "Buy Milk", "is_completed": True, "created_at": "2019-12-11T22:36:50.000000Z",
      "assignee_id": "2671142", "url": "https://todoist.com/showTask?id=2995104339", "priority": 4,
      "due": {"date": "2016-09-01", "datetime": "2016-09-01T12:00:00.000000Z", "string": "tomorrow at 12",
              "is_recurring": False}},
     {"completed": True, "source_created_at": datetime(2019, 12, 11, 22, 36, 50, tzinfo=UTC),
      "assignee_id": "2671142", "url": "https://todoist.com/showTask?id=2995104339", "priority": "urgent",
      "due_at": datetime(2016, 9, 1, 12, tzinfo=UTC), "all_day_due": False}),
    # A floating due time (no zone): kept as its wall time, flagged.
    ({"id": 7, "content": "Call", "priority": None, "labels": None, "description": None,
      "due": {"date": "2024-06-01T09:30:00", "timezone": None, "is_recurring": False}},
     {"external_id": "7", "priority": None, "labels": [], "due_at": datetime(2024, 6, 1, 9, 30, tzinfo=UTC),
      "all_day_due": False}),
])
def test_older_api_versions_and_nulls_still_land(item: dict[str, Any], expected: dict[str, Any]) -> None:
    [task] = ingest([Payload("task", item, variant="task")])
    assert {k: getattr(task, k) for k in expected} == expected


def test_a_task_without_an_id_is_rejected_with_its_reason() -> None:
    registry = Registry()
    registry.register(definition)
    ctx = IngestContext(tenant_id="t", integration_id="int_1", definition_id="todoist", emits=TaskSync.emits)
    [outcome] = IngestPipeline(registry).dry_run(ctx, [Payload("task", {"content": "no id"}, variant="task")])
    assert (outcome.status, outcome.reason_code) == ("rejected", "map_error")


def test_complete_task_closes_it() -> None:
    with respx.mock as mock:
        route = mock.post(f"{API}/tasks/6X7rM8997g3RQmvh/close").mock(return_value=httpx.Response(204))
        result, _ = run(CompleteTask, CompleteTaskConfig(task_id="6X7rM8997g3RQmvh"))
    assert route.called and result == {"task_id": "6X7rM8997g3RQmvh", "completed": True}
    with respx.mock as mock:
        mock.post(f"{API}/tasks/6X7rM8997g3RQmvh/close").mock(return_value=answer("error_401"))
        with pytest.raises(ProviderError) as refused:
            run(CompleteTask, CompleteTaskConfig(task_id="6X7rM8997g3RQmvh"))
    assert refused.value.code == "unauthorized"


def test_task_id_cannot_smuggle_a_path() -> None:
    with pytest.raises(ValueError):
        CompleteTaskConfig(task_id="../projects/1")


def test_account_resolves_from_the_user_endpoint() -> None:
    async def go() -> Any:
        async with OAUTH.client().build(ClientContext("int_1", slot(), None, None)) as client:
            return await OAUTH.connection().resolve(ConnectionContext("int_1", slot(), client, None, None))

    with respx.mock as mock:
        mock.get(f"{API}/user").mock(return_value=answer("user"))
        metadata = asyncio.run(go())
    assert (metadata.account_id, metadata.account_email, metadata.account_name) == (
        "2671355", "me@example.com", "Ada Lovelace")


def test_a_full_then_incremental_sync_lands_in_the_task_table(todoist: Any, database: Database) -> None:
    """Through the migrated table on both databases: the second sync updates one row the first one wrote and
    removes the other (deleted in Todoist), with a ``remove`` change in the feed."""
    _, queue = todoist
    queue.extend([recorded_answer("sync_full"), recorded_answer("sync_incremental")])
    registry = Registry()
    registry.register(definition)
    pipeline = IngestPipeline(registry, database)
    ctx = IngestContext(tenant_id="t_todoist", integration_id="int_todoist", definition_id="todoist",
                        emits=TaskSync.emits, origin="TaskSync")
    first, sync_ctx = sync()
    assert pipeline.process(ctx, first).persisted == 2
    second, _ = sync(cursor=sync_ctx.next_cursor)
    result = pipeline.process(ctx, second)
    assert (result.persisted, result.removed, result.rejected) == (1, 1, 0)
    with database.session() as session:
        rows = {t.external_id: t for t in session.exec(select(Task).where(Task.integration_id == "int_todoist"))}
        ops = [c.op for c in session.exec(select(RecordChange).where(RecordChange.integration_id == "int_todoist"))]
    assert set(rows) == {"6X7rM8997g3RQmvh"}
    assert rows["6X7rM8997g3RQmvh"].completed is True and rows["6X7rM8997g3RQmvh"].due_at is None
    assert ops.count("remove") == 1
