"""Todoist operations: an incremental task sync and completing a task.

The sync uses the Sync API (``POST /api/v1/sync``): the first run sends ``sync_token=*`` and receives every active
task; each answer carries a new ``sync_token``, which this run stores as its cursor (``ctx.next_cursor``, saved only
when the run succeeds), so the next run receives only what changed, deleted and completed tasks included.

Tether has no internal ``task`` model yet, so the sync returns a raw result (tasks in a stable, trimmed shape)
rather than ingesting into a model that does not fit (``calendar_event`` needs a start; a task often has none).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from definitions.todoist.oauth import TodoistClient
from engine import Operation, OperationContext, Policy, ProviderError
from engine.kit.egress import read_json
from engine.kit.providerkit import raise_for_status

API = "https://api.todoist.com/api/v1"
#: ``*`` asks the Sync API for a full sync.
FULL_SYNC = "*"


def task_view(item: dict[str, Any]) -> dict[str, Any]:
    """The fields a host app uses, from a Sync API ``items`` entry."""
    due = item.get("due") or None
    return {
        "id": str(item["id"]),
        "content": item.get("content", ""),
        "description": item.get("description") or None,
        "project_id": item.get("project_id"),
        "priority": item.get("priority"),
        "labels": list(item.get("labels") or []),
        "due": due.get("date") if isinstance(due, dict) else None,
        "recurring": bool(due.get("is_recurring")) if isinstance(due, dict) else False,
        "completed": bool(item.get("checked")),
        "completed_at": item.get("completed_at"),
        "updated_at": item.get("updated_at"),
    }


class TaskSync(Operation):
    """Sync tasks incrementally with the Sync API's ``sync_token`` as the cursor.

    Returns ``{"full_sync", "tasks", "deleted"}``: changed or new tasks, and the IDs of deleted ones.
    """

    client = TodoistClient
    policy = Policy.queued(reconcile=True)

    async def run(self, ctx: OperationContext) -> Any:
        token = ctx.cursor if isinstance(ctx.cursor, str) and ctx.cursor else FULL_SYNC
        response = await ctx.client.post(
            f"{API}/sync", data={"sync_token": token, "resource_types": json.dumps(["items"])}
        )
        raise_for_status(response, "Todoist")
        body = await read_json(response)
        if not isinstance(body, dict) or not isinstance(body.get("sync_token"), str):
            raise ProviderError("Todoist answered POST /api/v1/sync without a sync_token")
        items = [i for i in body.get("items") or [] if isinstance(i, dict) and "id" in i]
        ctx.next_cursor = body["sync_token"]
        return {
            "full_sync": bool(body.get("full_sync", token == FULL_SYNC)),
            "tasks": [task_view(i) for i in items if not i.get("is_deleted")],
            "deleted": [str(i["id"]) for i in items if i.get("is_deleted")],
        }


class CompleteTaskConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task_id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_-]+$")


class CompleteTask(Operation):
    """Complete (close) a task: a write, so it needs the ``data:read_write`` tier from the upgrade."""

    config = CompleteTaskConfig
    client = TodoistClient
    policy = Policy.inline(access="write")

    async def run(self, ctx: OperationContext) -> Any:
        config = ctx.config
        assert isinstance(config, CompleteTaskConfig)
        response = await ctx.client.post(f"{API}/tasks/{config.task_id}/close")
        raise_for_status(response, "Todoist")
        return {"task_id": config.task_id, "completed": True}
