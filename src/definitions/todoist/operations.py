"""Todoist operations: an incremental task sync into ``task``, and completing a task.

The sync uses the unified API v1's Sync endpoint (``POST /api/v1/sync``; the REST v2 and Sync v9 APIs it replaced
are deprecated): the first run sends ``sync_token=*`` and receives every active task; each answer carries a new
``sync_token``, which this run stores as its cursor (``ctx.next_cursor``, saved only when the run succeeds), so
the next run receives only what changed, deleted and completed tasks included. Each ``items`` entry is yielded as
it came and mapped by ``mappings.TASK`` (CEL) into the ``task`` model.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from definitions.todoist.oauth import TodoistClient
from engine import REMOVE, Emits, Operation, OperationContext, Payload, Policy, ProviderError
from engine.kit.egress import read_json
from engine.kit.providerkit import raise_for_status

API = "https://api.todoist.com/api/v1"
#: ``*`` asks the Sync API for a full sync.
FULL_SYNC = "*"


class TaskSync(Operation):
    """Sync tasks into ``task`` incrementally, with the Sync API's ``sync_token`` as the cursor.

    A deleted task arrives with ``is_deleted``: it is passed on as a removal (``REMOVE``), so its row goes.
    """

    client = TodoistClient
    policy = Policy.queued(reconcile=True)
    emits = (Emits("task", "task"),)

    async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        token = ctx.cursor if isinstance(ctx.cursor, str) and ctx.cursor else FULL_SYNC
        response = await ctx.client.post(
            f"{API}/sync", data={"sync_token": token, "resource_types": json.dumps(["items"])}
        )
        raise_for_status(response, "Todoist")
        body = await read_json(response)
        if not isinstance(body, dict) or not isinstance(body.get("sync_token"), str):
            raise ProviderError("Todoist answered POST /api/v1/sync without a sync_token")
        items = body.get("items")
        if items is not None and not isinstance(items, list):
            raise ProviderError("Todoist answered POST /api/v1/sync with items that are not a list")
        for item in items or []:
            # Not filtered here: an entry without an ID is rejected by the mapping, with its reason, not dropped.
            deleted = isinstance(item, dict) and item.get("is_deleted") is True
            yield Payload("task", item, variant="task", action=REMOVE if deleted else "")
        ctx.next_cursor = body["sync_token"]


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
