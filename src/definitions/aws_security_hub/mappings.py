"""Mappings: ASFF findings into ``finding`` and ``vulnerability``, their resources into ``asset``; Audit Manager
assessment controls and compliance-check evidence into ``finding``.

ASFF (the AWS Security Finding Format) is the same for every product feeding Security Hub. Optional blocks are
guarded with ``has()``; enums are lowered through literal maps because CEL has no ``lowerAscii`` here.
"""

from __future__ import annotations

from engine import Mapping

SEVERITY = '{"CRITICAL": "critical", "HIGH": "high", "MEDIUM": "medium", "LOW": "low", ' \
    '"INFORMATIONAL": "informational"}'

#: Fields every finding variant shares; ``status`` differs per variant.
_COMMON = f"""
      "external_id": payload.Id,
      "title": payload.Title,
      "description": has(payload.Description) ? payload.Description : null,
      "severity": has(payload.Severity) && has(payload.Severity.Label) ? {SEVERITY}[payload.Severity.Label] : null,
      "category": has(payload.Types) && size(payload.Types) > 0 ? payload.Types[0] : null,
      "source": "security_hub",
      "resource_identifier": has(payload.Resources) && size(payload.Resources) > 0 ? payload.Resources[0].Id : null,
      "recommendation": has(payload.Remediation) && has(payload.Remediation.Recommendation) &&
          has(payload.Remediation.Recommendation.Text) ? payload.Remediation.Recommendation.Text : null,
      "url": has(payload.SourceUrl) ? payload.SourceUrl : (has(payload.Remediation) &&
          has(payload.Remediation.Recommendation) && has(payload.Remediation.Recommendation.Url)
          ? payload.Remediation.Recommendation.Url : null),
      "first_seen_at": has(payload.FirstObservedAt) ? payload.FirstObservedAt : payload.CreatedAt,
      "last_seen_at": has(payload.LastObservedAt) ? payload.LastObservedAt : payload.UpdatedAt,
"""

#: A control check: its status is the compliance result (``failed``, ``passed``, ``warning``, ``not_available``).
CONTROL = Mapping(
    schema="finding",
    variant="control",
    map=f"""
    {{{_COMMON}
      "status": has(payload.Compliance.Status) ? {{"PASSED": "passed", "FAILED": "failed", "WARNING": "warning",
          "NOT_AVAILABLE": "not_available"}}[payload.Compliance.Status] : null,
      "attributes": {{
        "product_arn": payload.ProductArn,
        "account_id": payload.AwsAccountId,
        "control_id": has(payload.Compliance.SecurityControlId) ? payload.Compliance.SecurityControlId : null,
        "generator_id": payload.GeneratorId,
        "record_state": has(payload.RecordState) ? payload.RecordState : null
      }}
    }}
    """,
)

_WORKFLOW = '{"NEW": "new", "NOTIFIED": "notified", "RESOLVED": "resolved", "SUPPRESSED": "suppressed"}'

#: A detection (GuardDuty, Macie, a partner product): its status is the workflow state (``new`` … ``resolved``).
DETECTION = Mapping(
    schema="finding",
    variant="detection",
    map=f"""
    {{{_COMMON}
      "status": has(payload.Workflow) && has(payload.Workflow.Status) ? {_WORKFLOW}[payload.Workflow.Status]
          : (has(payload.RecordState) && payload.RecordState == "ARCHIVED" ? "archived" : null),
      "attributes": {{
        "product_arn": payload.ProductArn,
        "account_id": payload.AwsAccountId,
        "generator_id": payload.GeneratorId,
        "record_state": has(payload.RecordState) ? payload.RecordState : null
      }}
    }}
    """,
)

#: One CVE of one finding: the finding ID plus the CVE makes the key, since a finding can list several.
SOFTWARE = Mapping(
    schema="vulnerability",
    variant="software",
    map=f"""
    {{
      "external_id": payload.finding.Id + "#" + payload.vulnerability.Id,
      "cve_id": payload.vulnerability.Id.startsWith("CVE-") ? payload.vulnerability.Id : null,
      "title": payload.finding.Title,
      "description": has(payload.finding.Description) ? payload.finding.Description : null,
      "severity": has(payload.finding.Severity) && has(payload.finding.Severity.Label)
          ? {SEVERITY}[payload.finding.Severity.Label] : null,
      "cvss_score": has(payload.vulnerability.Cvss) && size(payload.vulnerability.Cvss) > 0
          ? double(payload.vulnerability.Cvss[0].BaseScore) : null,
      "status": has(payload.finding.Workflow) && has(payload.finding.Workflow.Status)
          ? {_WORKFLOW}[payload.finding.Workflow.Status] : null,
      "source": "security_hub",
      "package_name": has(payload.vulnerability.VulnerablePackages) &&
          size(payload.vulnerability.VulnerablePackages) > 0
          ? payload.vulnerability.VulnerablePackages[0].Name : null,
      "package_version": has(payload.vulnerability.VulnerablePackages) &&
          size(payload.vulnerability.VulnerablePackages) > 0 &&
          has(payload.vulnerability.VulnerablePackages[0].Version)
          ? payload.vulnerability.VulnerablePackages[0].Version : null,
      "fixed_version": has(payload.vulnerability.VulnerablePackages) &&
          size(payload.vulnerability.VulnerablePackages) > 0 &&
          has(payload.vulnerability.VulnerablePackages[0].FixedInVersion)
          ? payload.vulnerability.VulnerablePackages[0].FixedInVersion : null,
      "resource_identifier": has(payload.finding.Resources) && size(payload.finding.Resources) > 0
          ? payload.finding.Resources[0].Id : null,
      "url": has(payload.vulnerability.ReferenceUrls) && size(payload.vulnerability.ReferenceUrls) > 0
          ? payload.vulnerability.ReferenceUrls[0] : null,
      "published_at": has(payload.vulnerability.Vendor) && has(payload.vulnerability.Vendor.VendorCreatedAt)
          ? payload.vulnerability.Vendor.VendorCreatedAt : null,
      "attributes": {{
        "finding_id": payload.finding.Id,
        "product_arn": payload.finding.ProductArn,
        "account_id": payload.finding.AwsAccountId
      }}
    }}
    """,
)

#: A resource a finding names; its ARN (or product-specific ID) is the stable key.
RESOURCE = Mapping(
    schema="asset",
    variant="aws_resource",
    map="""
    {
      "source_identifier": payload.resource.Id,
      "name": payload.resource.Id,
      "asset_type": payload.resource.Type,
      "owner": payload.account_id,
      "source_updated_at": payload.seen_at,
      "attributes": {
        "partition": has(payload.resource.Partition) ? payload.resource.Partition : null,
        "region": has(payload.resource.Region) ? payload.resource.Region : null,
        "tags": has(payload.resource.Tags) ? payload.resource.Tags : {}
      }
    }
    """,
)

#: Audit Manager's review status of a control in an assessment.
_CONTROL_STATUS = '{"UNDER_REVIEW": "under_review", "REVIEWED": "reviewed", "INACTIVE": "inactive"}'

#: One control of one control set of an assessment. Audit Manager has no severity; the control's status is its
#: review state, and the assessment is the "resource" the finding is about.
AUDIT_CONTROL = Mapping(
    schema="finding",
    variant="audit_control",
    map=f"""
    {{
      "external_id": "auditmanager:assessment/" + payload.assessment.id + "/controlSet/" + payload.control_set.id +
          "/control/" + payload.control.id,
      "title": has(payload.control.name) ? payload.control.name : payload.control.id,
      "description": has(payload.control.description) ? payload.control.description : null,
      "severity": null,
      "status": has(payload.control.status) && payload.control.status in {_CONTROL_STATUS}
          ? {_CONTROL_STATUS}[payload.control.status] : null,
      "category": payload.control_set.id,
      "source": "audit_manager",
      "resource_identifier": payload.assessment.arn,
      "first_seen_at": payload.assessment.created_at,
      "last_seen_at": payload.assessment.updated_at,
      "attributes": {{
        "assessment_id": payload.assessment.id,
        "assessment_name": payload.assessment.name,
        "framework": payload.assessment.framework,
        "compliance_type": payload.assessment.compliance_type,
        "account_id": payload.assessment.account_id,
        "control_id": payload.control.id,
        "control_set_status": payload.control_set.status,
        "response": has(payload.control.response) ? payload.control.response : null,
        "evidence_count": has(payload.control.evidenceCount) ? payload.control.evidenceCount : null,
        "report_evidence_count": has(payload.control.assessmentReportEvidenceCount)
            ? payload.control.assessmentReportEvidenceCount : null,
        "evidence_sources": has(payload.control.evidenceSources) ? payload.control.evidenceSources : [],
        "comment_count": has(payload.control.comments) ? size(payload.control.comments) : 0
      }}
    }}
    """,
)

#: The compliance-check verdicts. AWS documents them in prose (compliant, non-compliant, not applicable) and
#: types the field as a free string, so the spellings of the sources it copies (Config's, Security Hub's) are
#: listed too; anything else is ``not_available`` with the raw value kept in the attributes.
_COMPLIANCE = '{"COMPLIANT": "passed", "PASSED": "passed", "NON_COMPLIANT": "failed", "FAILED": "failed", ' \
    '"NOT_APPLICABLE": "not_available", "INCONCLUSIVE": "not_available"}'

#: One compliance-check evidence: the Security Hub or Config result Audit Manager recorded for a control.
AUDIT_EVIDENCE = Mapping(
    schema="finding",
    variant="audit_evidence",
    map=f"""
    {{
      "external_id": "auditmanager:assessment/" + payload.assessment.id + "/evidence/" + payload.evidence.id,
      "title": payload.folder.controlName != null ? payload.folder.controlName
          : (payload.folder.name != null ? payload.folder.name : "Audit Manager evidence"),
      "description": has(payload.evidence.eventName) ? payload.evidence.eventName : null,
      "severity": null,
      "status": payload.evidence.complianceCheck in {_COMPLIANCE} ? {_COMPLIANCE}[payload.evidence.complianceCheck]
          : "not_available",
      "category": has(payload.evidence.evidenceByType) ? payload.evidence.evidenceByType : null,
      "source": "audit_manager",
      "resource_identifier": has(payload.evidence.resourcesIncluded) && size(payload.evidence.resourcesIncluded) > 0
          && has(payload.evidence.resourcesIncluded[0].arn) ? payload.evidence.resourcesIncluded[0].arn : null,
      "first_seen_at": has(payload.evidence.time) ? payload.evidence.time : null,
      "last_seen_at": has(payload.evidence.time) ? payload.evidence.time : null,
      "attributes": {{
        "assessment_id": payload.assessment.id,
        "assessment_name": payload.assessment.name,
        "control_set_id": payload.folder.controlSetId,
        "control_id": payload.folder.controlId,
        "evidence_folder_id": payload.folder.id,
        "compliance_check": payload.evidence.complianceCheck,
        "data_source": has(payload.evidence.dataSource) ? payload.evidence.dataSource : payload.folder.dataSource,
        "event_source": has(payload.evidence.eventSource) ? payload.evidence.eventSource : null,
        "account_id": has(payload.evidence.evidenceAwsAccountId) ? payload.evidence.evidenceAwsAccountId
            : (has(payload.evidence.awsAccountId) ? payload.evidence.awsAccountId : payload.assessment.account_id),
        "resources": has(payload.evidence.resourcesIncluded) ? payload.evidence.resourcesIncluded : [],
        "evidence_attributes": has(payload.evidence.attributes) ? payload.evidence.attributes : {{}}
      }}
    }}
    """,
)

MAPPINGS = (CONTROL, DETECTION, SOFTWARE, RESOURCE, AUDIT_CONTROL, AUDIT_EVIDENCE)
