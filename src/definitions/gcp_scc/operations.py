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
from engine import Emits, Operation, OperationContext, Payload, Policy
from engine.kit.providerkit import CursorPages, Page, PageRequest, paginate

PAGE_SIZE = 1000
MAX_PAGES = 10_000
ACTIVE = 'state="ACTIVE"'
FINDINGS = CursorPages(items_path="listFindingsResults", cursor_path="nextPageToken", missing_ok=True)


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
        path = f"/v1/{api.parent}/sources/-/findings"

        async def fetch(request: PageRequest) -> Page:
            token = {"pageToken": request.cursor} if request.cursor else {}
            body = await check(await api.http.get(path, params={"filter": ACTIVE, "pageSize": request.limit, **token}))
            return FINDINGS.read(body)

        pages = paginate(
            fetch,
            style=FINDINGS,
            limit=PAGE_SIZE,
            max_pages=MAX_PAGES,
            max_seconds=None,
            what="Security Command Center pagination",
        )
        async for page in pages:
            for result in page.items:
                yield classify(result)


def classify(result: dict[str, Any]) -> Payload:
    """One ``ListFindingsResult`` (``finding`` plus its ``resource``) as the payload of its variant."""
    finding = result.get("finding") or {}
    # A CVE only when it names one: proto3 JSON serves an unset ``cve`` as ``{"id": "", ...}``, which would land a
    # vulnerability with no CVE id (Google's published samples carry such blocks on non-CVE findings).
    cve = (finding.get("vulnerability") or {}).get("cve") or {}
    if finding.get("findingClass") == "VULNERABILITY" and cve.get("id"):
        return Payload(schema="vulnerability", variant="cve", resource="finding", data=result)
    variant = "threat" if finding.get("findingClass") == "THREAT" else "misconfiguration"
    return Payload(schema="finding", variant=variant, resource="finding", data=result)
