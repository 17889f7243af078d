"""Operations: the health check, the sync of all six kinds, and one write (``ResolveFinding``).

``Sync`` is incremental. Its cursor (``ctx.cursor``, saved by the engine only when a run succeeds) is a watermark per
kind: the latest ``updated_at`` it has read. The first run reads every list in full; later runs ask for
``updated_since=<watermark>``, which also returns deleted records (``"deleted": true``): those go to ingest as
removals (``Payload(remove=True)``), so their rows go and the change feed records their tombstones.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from definitions.sandbox.api import get_json, paginate, raise_for_status
from definitions.sandbox.client import SandboxClient
from definitions.sandbox.kinds import BY_NAME, EMITS, KINDS
from engine import Operation, OperationContext, Payload, Policy


class HealthCheck(Operation):
    """Check that the credential is accepted: ``GET /me`` names the account it belongs to."""

    client = SandboxClient
    policy = Policy.inline()

    async def run(self, ctx: OperationContext) -> dict[str, Any]:
        me = await get_json(ctx.client, "/me")
        return {"ok": True, "account": me.get("account")}


class FindingChange(BaseModel):
    """Which finding, and the status to give it."""

    model_config = ConfigDict(extra="forbid")

    finding_id: str = Field(min_length=1, max_length=64, description="The finding's ID (``fnd_…``).")
    status: Literal["open", "resolved"] = Field(default="resolved", description="The status to set.")


class ResolveFinding(Operation):
    """Resolve (or reopen) one finding at the sandbox: a write, so an OAuth grant needs the ``records:write`` tier.

    Open to ``user`` principals (``user_may_run``): a person may triage their own account's findings, as an agent
    acting for them does over MCP.
    """

    client = SandboxClient
    config = FindingChange
    policy = Policy.inline(access="write", user_may_run=True)

    async def run(self, ctx: OperationContext) -> dict[str, Any]:
        change: FindingChange = ctx.config  # type: ignore[assignment]
        response = await ctx.client.patch(f"/findings/{change.finding_id}", json={"status": change.status})
        raise_for_status(response)
        found = response.json()
        return {"id": found.get("id"), "status": found.get("status")}


class Sync(Operation):
    """Sync users, groups, memberships, assets, findings and events; incremental after the first run."""

    client = SandboxClient
    policy = Policy.queued(reconcile=True, schedule=timedelta(minutes=15))
    emits = EMITS

    async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        previous = ctx.cursor if isinstance(ctx.cursor, dict) else {}
        watermarks = {k: v for k, v in previous.items() if isinstance(k, str) and isinstance(v, str)}
        for kind in KINDS:
            since = watermarks.get(kind.name)
            async for record in paginate(ctx.client, kind.name, updated_since=since):
                watermarks[kind.name] = later(watermarks.get(kind.name), record)
                yield payload(kind.name, record, action="sync", remove=deleted(record))
        ctx.next_cursor = {k: v for k, v in watermarks.items() if v}


def later(watermark: str | None, record: Any) -> str | None:
    """The later of a watermark and a record's ``updated_at`` (compared as instants, kept as the sandbox wrote it);
    a record without a readable stamp leaves the watermark as it was."""
    stamp = record.get("updated_at") if isinstance(record, dict) else None
    seen = _instant(stamp)
    if seen is None:
        return watermark
    current = _instant(watermark)
    return stamp if current is None or seen > current else watermark


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def deleted(record: Any) -> bool:
    """Whether a listed record is one the sandbox deleted."""
    return isinstance(record, dict) and record.get("deleted") is True


def payload(kind_name: str, record: Any, *, action: str, remove: bool = False) -> Payload:
    """One sandbox record on its way to ingest (``resource`` is its kind); ``remove``: the sandbox deleted it."""
    kind = BY_NAME[kind_name]
    return Payload(
        schema=kind.schema, variant=kind.variant, data=record, resource=kind.name, action=action, remove=remove
    )
