"""Operations: the health check, the finding sync and the resource sync.

Both syncs read ``GetFindings`` over a time window on ``UpdatedAt``. The window starts at the previous run's
start (the cursor, minus a small overlap for findings AWS stores late) or, on the first run, ``lookback_days``
ago, and ends when this run started: changes made while a run is reading are picked up by the next one. The
window is also applied client-side, because the filter is not honoured everywhere (moto ignores it) and an
upsert of an unchanged finding is wasted work, not harm.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from pydantic import BaseModel, ConfigDict, Field

from definitions.aws_security_hub.aws import call, paginate
from definitions.aws_security_hub.client import AwsApi, SecurityHubClient
from engine import Emits, Operation, OperationContext, Payload, Policy

#: The largest page ``GetFindings`` serves (more is ``InvalidInputException``).
PAGE_SIZE = 100
#: Re-read this much before the cursor: Security Hub can make a finding visible shortly after its ``UpdatedAt``.
OVERLAP = timedelta(minutes=10)


class WindowConfig(BaseModel):
    """How far back the first run reads (Security Hub keeps findings for 90 days)."""

    model_config = ConfigDict(extra="forbid")

    lookback_days: int = Field(default=30, ge=1, le=90)


class HealthCheck(Operation):
    """Security Hub is enabled in the home region and the credential can read it (``DescribeHub``)."""

    client = SecurityHubClient
    policy = Policy.inline()

    async def run(self, ctx: OperationContext) -> dict[str, Any]:
        api = cast(AwsApi, ctx.client)
        hub = await call(api.securityhub.describe_hub)
        return {"ok": True, "hub_arn": hub.get("HubArn"), "region": api.region}


class FindingSync(Operation):
    """Sync findings into ``finding`` rows (control checks and detections) and ``vulnerability`` rows.

    A finding with a ``Vulnerabilities`` array (Amazon Inspector, or any product reporting CVEs) becomes one
    vulnerability per entry; a finding with a ``Compliance`` block is a failed or passed control check; anything
    else (GuardDuty, Macie, partner products) is a detection.
    """

    config = WindowConfig
    client = SecurityHubClient
    policy = Policy.queued(reconcile=True, schedule=timedelta(hours=1))
    emits = (Emits("finding", "control"), Emits("finding", "detection"), Emits("vulnerability", "software"))

    async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        start, end = window(ctx)
        async for finding in findings(cast(AwsApi, ctx.client), start, end):
            vulnerabilities = finding.get("Vulnerabilities") or []
            if vulnerabilities:
                for vulnerability in vulnerabilities:
                    yield Payload(schema="vulnerability", variant="software", resource="finding",
                                  data={"finding": finding, "vulnerability": vulnerability})
            else:
                variant = "control" if finding.get("Compliance") else "detection"
                yield Payload(schema="finding", variant=variant, resource="finding", data=finding)
        ctx.next_cursor = end.isoformat()


class ResourceSync(Operation):
    """Sync the AWS resources that findings name (``Resources[]``) into ``asset`` rows, once per resource.

    Security Hub has no inventory of its own; the resources its findings point at are the ones worth knowing
    (a full inventory through AWS Config is not built yet).
    """

    config = WindowConfig
    client = SecurityHubClient
    policy = Policy.queued(reconcile=True, schedule=timedelta(hours=6))
    emits = (Emits("asset", "aws_resource"),)

    async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        start, end = window(ctx)
        seen: set[str] = set()
        async for finding in findings(cast(AwsApi, ctx.client), start, end):
            for resource in finding.get("Resources") or []:
                resource_id = resource.get("Id")
                if not resource_id or resource_id in seen:
                    continue
                seen.add(resource_id)
                yield Payload(schema="asset", variant="aws_resource", resource="resource", data={
                    "resource": resource,
                    "account_id": finding.get("AwsAccountId"),
                    "seen_at": finding.get("UpdatedAt"),
                })
        ctx.next_cursor = end.isoformat()


def window(ctx: OperationContext) -> tuple[datetime, datetime]:
    """``[start, end]`` of ``UpdatedAt`` this run reads: from the cursor (or the lookback) to now."""
    end = datetime.now(UTC).replace(microsecond=0)
    cursor = parse_time(ctx.cursor) if isinstance(ctx.cursor, str) else None
    if cursor is not None:
        return min(cursor - OVERLAP, end), end
    days = ctx.config.lookback_days if isinstance(ctx.config, WindowConfig) else WindowConfig().lookback_days
    return end - timedelta(days=days), end


async def findings(api: AwsApi, start: datetime, end: datetime) -> AsyncIterator[dict[str, Any]]:
    """Every finding updated in ``[start, end]``, following ``NextToken`` until the last page."""
    filters = {"UpdatedAt": [{"Start": _iso(start), "End": _iso(end)}]}
    async for finding in paginate(api.securityhub.get_findings, "Findings", Filters=filters, MaxResults=PAGE_SIZE):
        updated = parse_time(finding.get("UpdatedAt"))
        if updated is not None and start <= updated <= end:
            yield finding


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def parse_time(value: Any) -> datetime | None:
    """An AWS timestamp (ISO 8601, ``Z`` or offset); ``None`` when missing or malformed."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
