"""AWS Audit Manager operations: assessment controls and compliance-check evidence, as findings.

Audit Manager sits beside Security Hub in the consolidated AWS definition (same role, same region): its
assessments run a framework's controls against the account, and it collects evidence per control into daily
evidence folders. Two syncs read it:

- ``AuditAssessmentSync``: ``ListAssessments`` (active ones) then ``GetAssessment`` for each, one ``finding``
  per control of each control set, whose status is the control's review status.
- ``AuditEvidenceSync``: for each active assessment, ``GetEvidenceFoldersByAssessment`` and, for the folders of
  the time window that hold compliance-check evidence, ``GetEvidenceByEvidenceFolder``; one ``finding`` per
  compliance-check evidence (the Security Hub or Config result Audit Manager recorded for a control).

Audit Manager must be set up in the account and region (``GetAccountStatus`` is ``ACTIVE``); when it is not, the
runs fail with ``not_enabled`` rather than with the ``AccessDeniedException`` its other calls answer. Every list
follows ``nextToken`` through ``aws.paginate``; every call goes through ``aws.call`` (a worker thread, typed
errors: a throttled call is ``rate_limited`` and the queue defers the run) and the egress sender of the client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any, cast

from definitions.aws_security_hub.aws import call, jsonable, paginate
from definitions.aws_security_hub.client import AwsApi, SecurityHubClient
from definitions.aws_security_hub.operations import WindowConfig, parse_time, window
from engine import Emits, Operation, OperationContext, Payload, Policy, ProviderError

#: Assessments and evidence folders are small records; AWS allows up to 1000 per page.
LIST_PAGE_SIZE = 1000
#: Evidence carries arbitrary attribute maps and resource lists: smaller pages stay far below the egress size cap.
EVIDENCE_PAGE_SIZE = 100
#: A folder holds one control's evidence of one day and is dated by its first evidence: a folder dated up to a
#: day before the window can still hold evidence inside it.
FOLDER_SLACK = timedelta(days=1)


async def require_enabled(api: AwsApi) -> None:
    """Audit Manager is set up in this account and region, or the run stops with ``not_enabled``."""
    answer = await call(api.auditmanager.get_account_status)
    if answer.get("status") != "ACTIVE":
        raise ProviderError("Audit Manager is not set up in this account and region", code="not_enabled")


async def active_assessments(api: AwsApi) -> AsyncIterator[dict[str, Any]]:
    """The full ``Assessment`` of each active assessment (inactive ones collect no more evidence)."""
    async for summary in paginate(
        api.auditmanager.list_assessments,
        "assessmentMetadata",
        token="nextToken",
        status="ACTIVE",
        maxResults=LIST_PAGE_SIZE,
    ):
        if not summary.get("id"):
            continue  # the model makes every field optional; an assessment without an ID cannot be read
        answer = await call(api.auditmanager.get_assessment, assessmentId=summary["id"])
        assessment = jsonable(answer.get("assessment") or {})
        # Every finding's key starts with the assessment ID: the one listed is the one read.
        assessment["metadata"] = {**(assessment.get("metadata") or {}), "id": summary["id"]}
        yield assessment


def _context(assessment: dict[str, Any]) -> dict[str, Any]:
    """What each finding of an assessment says about it (a subset: the scope and roles can be large)."""
    metadata = assessment.get("metadata") or {}
    framework = assessment.get("framework") or {}
    return {
        "arn": assessment.get("arn"),
        "id": metadata.get("id"),
        "name": metadata.get("name"),
        "status": metadata.get("status"),
        "compliance_type": metadata.get("complianceType"),
        "account_id": (assessment.get("awsAccount") or {}).get("id"),
        "framework": (framework.get("metadata") or {}).get("name"),
        "created_at": metadata.get("creationTime"),
        "updated_at": metadata.get("lastUpdated"),
    }


class AuditAssessmentSync(Operation):
    """Sync the controls of active Audit Manager assessments into ``finding`` rows (variant ``audit_control``)."""

    client = SecurityHubClient
    policy = Policy.queued(reconcile=True, schedule=timedelta(hours=6), access="read")
    emits = (Emits("finding", "audit_control"),)

    async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        api = cast(AwsApi, ctx.client)
        await require_enabled(api)
        async for assessment in active_assessments(api):
            context = _context(assessment)
            for control_set in (assessment.get("framework") or {}).get("controlSets") or []:
                for control in control_set.get("controls") or []:
                    yield Payload(
                        schema="finding",
                        variant="audit_control",
                        resource="control",
                        data={
                            "assessment": context,
                            "control_set": {"id": control_set.get("id"), "status": control_set.get("status")},
                            "control": control,
                        },
                    )


class AuditEvidenceSync(Operation):
    """Sync compliance-check evidence of active assessments into ``finding`` rows (variant ``audit_evidence``).

    Only evidence with a compliance check is a finding: configuration snapshots, user activity and manual
    evidence record what happened, not whether a control passed. The window is the Security Hub syncs' one (the
    previous run's start, or ``lookback_days`` ago), applied to the folder date and to each evidence's ``time``.
    """

    config = WindowConfig
    client = SecurityHubClient
    policy = Policy.queued(reconcile=True, schedule=timedelta(hours=6), access="read")
    emits = (Emits("finding", "audit_evidence"),)

    async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        api = cast(AwsApi, ctx.client)
        start, end = window(ctx)
        await require_enabled(api)
        async for assessment in active_assessments(api):
            context = _context(assessment)
            async for listed in paginate(
                api.auditmanager.get_evidence_folders_by_assessment,
                "evidenceFolders",
                token="nextToken",
                assessmentId=context["id"],
                maxResults=LIST_PAGE_SIZE,
            ):
                folder = jsonable(listed)
                if not _worth_reading(folder, start):
                    continue
                async for evidence in paginate(
                    api.auditmanager.get_evidence_by_evidence_folder,
                    "evidence",
                    token="nextToken",
                    assessmentId=context["id"],
                    controlSetId=folder["controlSetId"],
                    evidenceFolderId=folder["id"],
                    maxResults=EVIDENCE_PAGE_SIZE,
                ):
                    item = jsonable(evidence)
                    collected = parse_time(item.get("time"))
                    if not item.get("complianceCheck") or (collected is not None and not start <= collected <= end):
                        continue
                    yield Payload(
                        schema="finding",
                        variant="audit_evidence",
                        resource="evidence",
                        data={
                            "assessment": context,
                            "folder": _folder(folder),
                            "evidence": item,
                        },
                    )
        ctx.next_cursor = end.isoformat()


def _worth_reading(folder: dict[str, Any], start: datetime) -> bool:
    """A folder of the window that may hold compliance checks (a missing count or date is read, not guessed)."""
    if not folder.get("id") or not folder.get("controlSetId"):
        return False  # nothing could address its evidence
    dated = parse_time(folder.get("date"))
    if dated is not None and dated < start - FOLDER_SLACK:
        return False
    return folder.get("evidenceByTypeComplianceCheckCount") != 0


def _folder(folder: dict[str, Any]) -> dict[str, Any]:
    return {key: folder.get(key) for key in ("id", "name", "controlSetId", "controlId", "controlName", "dataSource")}
