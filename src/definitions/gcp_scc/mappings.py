"""Mappings: SCC findings into ``finding`` (threat, misconfiguration) and ``vulnerability`` (cve).

A payload is a ``ListFindingsResult``: ``payload.finding`` is the finding, ``payload.resource`` the resource it
is about. The finding's full resource name (``organizations/…/sources/…/findings/…``) is the stable key.
"""

from __future__ import annotations

from engine import Mapping

SEVERITY = '{"CRITICAL": "critical", "HIGH": "high", "MEDIUM": "medium", "LOW": "low"}'
STATE = '{"ACTIVE": "open", "INACTIVE": "resolved"}'

_FINDING = f"""
    {{
      "external_id": payload.finding.name,
      "title": payload.finding.category,
      "description": has(payload.finding.description) ? payload.finding.description : null,
      "severity": has(payload.finding.severity) && payload.finding.severity in {SEVERITY}
          ? {SEVERITY}[payload.finding.severity] : null,
      "status": has(payload.finding.state) && payload.finding.state in {STATE} ? {STATE}[payload.finding.state] : null,
      "category": payload.finding.category,
      "source": "scc",
      "resource_identifier": payload.finding.resourceName,
      "recommendation": has(payload.finding.nextSteps) ? payload.finding.nextSteps : null,
      "url": has(payload.finding.externalUri) ? payload.finding.externalUri : null,
      "first_seen_at": has(payload.finding.createTime) ? payload.finding.createTime : null,
      "last_seen_at": has(payload.finding.eventTime) ? payload.finding.eventTime : null,
      "attributes": {{
        "finding_class": has(payload.finding.findingClass) ? payload.finding.findingClass : null,
        "parent": payload.finding.parent,
        "project": has(payload.resource) && has(payload.resource.projectDisplayName)
            ? payload.resource.projectDisplayName : null,
        "resource_type": has(payload.resource) && has(payload.resource.type) ? payload.resource.type : null
      }}
    }}
"""

THREAT = Mapping(schema="finding", variant="threat", map=_FINDING)
MISCONFIGURATION = Mapping(schema="finding", variant="misconfiguration", map=_FINDING)

CVE = Mapping(
    schema="vulnerability",
    variant="cve",
    map=f"""
    {{
      "external_id": payload.finding.name,
      "cve_id": payload.finding.vulnerability.cve.id,
      "title": payload.finding.category + ": " + payload.finding.vulnerability.cve.id,
      "description": has(payload.finding.description) ? payload.finding.description : null,
      "severity": has(payload.finding.severity) && payload.finding.severity in {SEVERITY}
          ? {SEVERITY}[payload.finding.severity] : null,
      "cvss_score": has(payload.finding.vulnerability.cve.cvssv3) &&
          has(payload.finding.vulnerability.cve.cvssv3.baseScore)
          ? double(payload.finding.vulnerability.cve.cvssv3.baseScore) : null,
      "status": has(payload.finding.state) && payload.finding.state in {STATE} ? {STATE}[payload.finding.state] : null,
      "source": "scc",
      "package_name": has(payload.finding.vulnerability.offendingPackage) &&
          has(payload.finding.vulnerability.offendingPackage.packageName)
          ? payload.finding.vulnerability.offendingPackage.packageName : null,
      "package_version": has(payload.finding.vulnerability.offendingPackage) &&
          has(payload.finding.vulnerability.offendingPackage.packageVersion)
          ? payload.finding.vulnerability.offendingPackage.packageVersion : null,
      "fixed_version": has(payload.finding.vulnerability.fixedPackage) &&
          has(payload.finding.vulnerability.fixedPackage.packageVersion)
          ? payload.finding.vulnerability.fixedPackage.packageVersion : null,
      "resource_identifier": payload.finding.resourceName,
      "url": has(payload.finding.vulnerability.cve.references) &&
          size(payload.finding.vulnerability.cve.references) > 0
          ? payload.finding.vulnerability.cve.references[0].uri : null,
      "attributes": {{
        "parent": payload.finding.parent,
        "exploitation_activity": has(payload.finding.vulnerability.cve.exploitationActivity)
            ? payload.finding.vulnerability.cve.exploitationActivity : null
      }}
    }}
    """,
)

MAPPINGS = (THREAT, MISCONFIGURATION, CVE)
