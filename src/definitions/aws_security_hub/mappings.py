"""Mappings: ASFF findings into ``finding`` and ``vulnerability``, their resources into ``asset``.

ASFF (the AWS Security Finding Format) is the same for every product feeding Security Hub. Optional blocks are
guarded with ``has()``; enums are lowered through literal maps because CEL has no ``lowerAscii`` here. Checked
against AWS's published ASFF examples (``tests/definitions/test_aws_security_hub_published.py``): every attribute
of a ``Vulnerabilities`` entry but ``Id`` is optional, so none of them may fail the record.
"""

from __future__ import annotations

from engine import Mapping
from engine.kit.celpaths import present

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

#: A CVSS entry with a score (``BaseScore`` is optional in ASFF), and one of CVSS version 3 (``V3``, ``3.1``):
#: a finding lists several (AWS's own example has V3 and V2), and the v3 score is preferred wherever it stands.
SCORED = "(has(c.BaseScore) && type(c.BaseScore) != null_type)"
SCORED_V3 = f"({SCORED} && has(c.Version) && type(c.Version) == string && c.Version.contains(\"3\"))"

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
      "cvss_score": {present("vulnerability.Cvss")} && payload.vulnerability.Cvss.exists(c, {SCORED_V3})
          ? double(payload.vulnerability.Cvss.filter(c, {SCORED_V3})[0].BaseScore)
          : ({present("vulnerability.Cvss")} && payload.vulnerability.Cvss.exists(c, {SCORED})
             ? double(payload.vulnerability.Cvss.filter(c, {SCORED})[0].BaseScore) : null),
      "status": has(payload.finding.Workflow) && has(payload.finding.Workflow.Status)
          ? {_WORKFLOW}[payload.finding.Workflow.Status] : null,
      "source": "security_hub",
      "package_name": has(payload.vulnerability.VulnerablePackages) &&
          size(payload.vulnerability.VulnerablePackages) > 0 &&
          has(payload.vulnerability.VulnerablePackages[0].Name)
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

MAPPINGS = (CONTROL, DETECTION, SOFTWARE, RESOURCE)
