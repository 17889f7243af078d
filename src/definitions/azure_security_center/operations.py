"""Operations: the health check, assessments and sub-assessments.

Assessments are Defender for Cloud's per-resource recommendation results (healthy, unhealthy, not applicable);
sub-assessments are the individual findings under some of them (a CVE on a VM, a vulnerable container image).
Both are read in full at subscription scope each run, so a resolved item stops being confirmed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, cast

from definitions.azure_security_center.arm import check, paginate
from definitions.azure_security_center.client import ArmApi, ArmClient
from engine import Emits, Operation, OperationContext, Payload, Policy

SUBSCRIPTION_API = "2022-12-01"
ASSESSMENTS_API = "2021-06-01"
SUB_ASSESSMENTS_API = "2019-01-01-preview"


class HealthCheck(Operation):
    """The service principal gets a token and can read the subscription."""

    client = ArmClient
    policy = Policy.inline()

    async def run(self, ctx: OperationContext) -> dict[str, Any]:
        api = cast(ArmApi, ctx.client)
        response = await api.http.get(f"/subscriptions/{api.subscription_id}",
                                      params={"api-version": SUBSCRIPTION_API})
        subscription = await check(response)
        return {"ok": True, "subscription": subscription.get("displayName"), "state": subscription.get("state")}


class AssessmentsCollect(Operation):
    """Sync every security assessment of the subscription into ``vulnerability`` rows (variant ``assessment``)."""

    client = ArmClient
    policy = Policy.queued(reconcile=True, schedule=timedelta(hours=6))
    emits = (Emits("vulnerability", "assessment"),)

    async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        api = cast(ArmApi, ctx.client)
        path = f"/subscriptions/{api.subscription_id}/providers/Microsoft.Security/assessments"
        async for assessment in paginate(api.http, path, ASSESSMENTS_API):
            yield Payload(schema="vulnerability", variant="assessment", resource="assessment", data=assessment)


class SubAssessmentsCollect(Operation):
    """Sync every sub-assessment (individual vulnerability) into ``vulnerability`` rows (``sub_assessment``)."""

    client = ArmClient
    policy = Policy.queued(reconcile=True, schedule=timedelta(hours=6))
    emits = (Emits("vulnerability", "sub_assessment"),)

    async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        api = cast(ArmApi, ctx.client)
        path = f"/subscriptions/{api.subscription_id}/providers/Microsoft.Security/subAssessments"
        async for sub in paginate(api.http, path, SUB_ASSESSMENTS_API):
            yield Payload(schema="vulnerability", variant="sub_assessment", resource="sub_assessment", data=sub)
