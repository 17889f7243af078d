"""Todoist: OAuth from ``todoist.toml`` plus a ``sync_token`` task sync and completing a task, against the
documented API v1 shapes replayed by respx."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from definitions.todoist import definition
from definitions.todoist.oauth import OAUTH
from definitions.todoist.operations import CompleteTask, CompleteTaskConfig, TaskSync
from engine import ClientContext, ConnectionContext, NoConfig, OperationContext, ProviderError, Revoke
from engine.catalog.registry import Registry

API = "https://api.todoist.com/api/v1"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "todoist"


def answer(name: str) -> httpx.Response:
    rec = json.loads((FIXTURES / f"{name}.json").read_text())
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


def test_first_sync_is_full_and_stores_the_sync_token_as_cursor() -> None:
    with respx.mock as mock:
        route = mock.post(f"{API}/sync").mock(return_value=answer("sync_full"))
        result, ctx = run(TaskSync)
    sent = parse_qs(route.calls.last.request.content.decode())
    assert sent == {"sync_token": ["*"], "resource_types": ['["items"]']}
    assert route.calls.last.request.headers["authorization"] == "Bearer todoist-token"
    assert ctx.next_cursor == "TnYUZEpuzf2FMA9qzyY3j4xky6dXiYejmSO85S5paZ_a9y1FI85mBbIWZGpW"
    assert result["full_sync"] is True and result["deleted"] == []
    assert result["tasks"] == [
        {"id": "6X7rM8997g3RQmvh", "content": "Buy milk", "description": None, "project_id": "6Jf8VQXxpwv56VQ7",
         "priority": 1, "labels": ["errands"], "due": "2024-05-03", "recurring": False, "completed": False,
         "completed_at": None, "updated_at": "2024-05-01T09:00:00.000000Z"},
        {"id": "6X7rfFVPjhvv84XG", "content": "Water the plants", "description": "Balcony first",
         "project_id": "6Jf8VQXxpwv56VQ7", "priority": 4, "labels": [], "due": "2024-05-02T08:00:00Z",
         "recurring": True, "completed": False, "completed_at": None, "updated_at": "2024-05-01T09:05:00.000000Z"},
    ]


def test_next_sync_sends_the_stored_token_and_reports_changes_and_deletions() -> None:
    with respx.mock as mock:
        route = mock.post(f"{API}/sync").mock(return_value=answer("sync_incremental"))
        result, ctx = run(TaskSync, cursor="TnYUZEpuzf2FMA9qzyY3j4xky6dXiYejmSO85S5paZ_a9y1FI85mBbIWZGpW")
    assert parse_qs(route.calls.last.request.content.decode())["sync_token"] == [
        "TnYUZEpuzf2FMA9qzyY3j4xky6dXiYejmSO85S5paZ_a9y1FI85mBbIWZGpW"]
    assert ctx.next_cursor == "Z9kXbGAZ9jPx-2c0Jxb9mx2ePrq2d2zRNqvjqDl6L1N4v4Ah0VYlQ9mSKD0e"
    assert result["full_sync"] is False
    assert result["deleted"] == ["6X7rfFVPjhvv84XG"]
    [task] = result["tasks"]
    assert (task["completed"], task["completed_at"], task["due"]) == (True, "2024-05-02T18:30:00.000000Z", None)


@pytest.mark.parametrize(("fixture", "code", "retry_after"), [("error_401", "unauthorized", None),
                                                               ("error_429", "rate_limited", 42.0)])
def test_sync_errors_keep_the_cursor(fixture: str, code: str, retry_after: float | None) -> None:
    with respx.mock as mock:
        mock.post(f"{API}/sync").mock(return_value=answer(fixture))
        with pytest.raises(ProviderError) as failed:
            run(TaskSync, cursor="old-token")
    assert (failed.value.code, failed.value.retry_after) == (code, retry_after)
    assert "abc123" not in str(failed.value)


def test_a_sync_answer_without_a_token_fails() -> None:
    with respx.mock as mock:
        mock.post(f"{API}/sync").mock(return_value=httpx.Response(200, json={"items": []}))
        with pytest.raises(ProviderError):
            run(TaskSync)


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
