"""Operations: the health check and the findings sync.

Findings are listed across every source of the parent (``sources/-``), active ones only, in full each run
(reconcile), ``nextPageToken`` after ``nextPageToken``. A finding of class ``VULNERABILITY`` that names a CVE is a
vulnerability; a ``THREAT`` is a threat finding; everything else (misconfigurations, observations) is a
misconfiguration finding.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, cast

from definitions.gcp_scc.client import SccApi, SccClient
from definitions.gcp_scc.rest import check
from engine import Emits, Operation, OperationContext, Payload, Policy, ProviderError

PAGE_SIZE = 1000
MAX_PAGES = 10_000
ACTIVE = 'state="ACTIVE"'


class HealthCheck(Operation):
    """A token can be minted and one finding of the parent can be read (an empty list is fine)."""

    client = SccClient
    policy = Policy.inline()

    async def run(self, ctx: OperationContext) -> dict[str, Any]:
        api = cast(SccApi, ctx.client)
        body = await check(await api.http.get(f"/v1/{api.parent}/sources/-/findings", params={"pageSize": 1}))
        return {"ok": True, "parent": api.parent, "read_time": body.get("readTime")}


class FindingsSync(Operation):
    """Sync active findings into ``finding`` (``threat``, ``misconfiguration``) and ``vulnerability`` (``cve``)."""

    client = SccClient
    policy = Policy.queued(reconcile=True, schedule=timedelta(hours=1))
    emits = (Emits("finding", "threat"), Emits("finding", "misconfiguration"), Emits("vulnerability", "cve"))

    async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        api = cast(SccApi, ctx.client)
        params: dict[str, Any] = {"filter": ACTIVE, "pageSize": PAGE_SIZE}
        tokens: set[str] = set()
        for _ in range(MAX_PAGES):
            body = await check(await api.http.get(f"/v1/{api.parent}/sources/-/findings", params=params))
            for result in body.get("listFindingsResults") or []:
                yield classify(result)
            token = body.get("nextPageToken")
            if not token:
                return
            if token in tokens:
                raise ProviderError("Security Command Center pagination repeated a page token")
            tokens.add(token)
            params = {**params, "pageToken": token}
        raise ProviderError(f"Security Command Center pagination stopped after {MAX_PAGES} pages")


def classify(result: dict[str, Any]) -> Payload:
    """One ``ListFindingsResult`` (``finding`` plus its ``resource``) as the payload of its variant."""
    finding = result.get("finding") or {}
    if finding.get("findingClass") == "VULNERABILITY" and (finding.get("vulnerability") or {}).get("cve"):
        return Payload(schema="vulnerability", variant="cve", resource="finding", data=result)
    variant = "threat" if finding.get("findingClass") == "THREAT" else "misconfiguration"
    return Payload(schema="finding", variant=variant, resource="finding", data=result)
