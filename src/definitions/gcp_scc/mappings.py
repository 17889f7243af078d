"""Mappings: SCC findings into ``finding`` (threat, misconfiguration) and ``vulnerability`` (cve).

A payload is a ``ListFindingsResult``: ``payload.finding`` is the finding, ``payload.resource`` the resource it
is about. The finding's full resource name (``organizations/…/sources/…/findings/…``) is the stable key.
"""

from __future__ import annotations

from engine import Mapping
from engine.kit.celpaths import present, text

SEVERITY = '{"CRITICAL": "critical", "HIGH": "high", "MEDIUM": "medium", "LOW": "low"}'
STATE = '{"ACTIVE": "open", "INACTIVE": "resolved"}'

# Google serves the API as proto3 JSON: an unset string arrives as "" and an unset number as 0 as often as it is
# left out (Google's published samples carry both), so free-text fields go through ``text`` and the CVSS score of
# an unset ``cvssv3`` (0 with every metric ``*_UNSPECIFIED``) lands as no score. v1's ``Resource`` names the
# project at ``projectDisplayName``; the newer shape (v2, and v1 results for location-scoped findings) nests it in
# ``gcpMetadata``: both are read.
_CVE = "finding.vulnerability.cve"
_CVSS = f"{present('finding.vulnerability')} && {present(_CVE)} && {present(_CVE + '.cvssv3')} && " + (
    f"{present(_CVE + '.cvssv3.baseScore')} && double(payload.{_CVE}.cvssv3.baseScore) > 0.0"
)


def _package(which: str) -> str:
    path = f"finding.vulnerability.{which}"
    return f"({present(path)} ? {text(path + '.packageVersion')} : null)"


_PROJECT = (
    f"{present('resource')} ? ({present('resource.gcpMetadata')}"
    f" ? {text('resource.projectDisplayName', 'resource.gcpMetadata.projectDisplayName')}"
    f" : {text('resource.projectDisplayName')}) : null"
)

_FINDING = f"""
    {{
      "external_id": payload.finding.name,
      "title": payload.finding.category,
      "description": {text("finding.description")},
      "severity": {present("finding.severity")} && payload.finding.severity in {SEVERITY}
          ? {SEVERITY}[payload.finding.severity] : null,
      "status": {present("finding.state")} && payload.finding.state in {STATE} ? {STATE}[payload.finding.state] : null,
      "category": payload.finding.category,
      "source": "scc",
      "resource_identifier": payload.finding.resourceName,
      "recommendation": {text("finding.nextSteps")},
      "url": {text("finding.externalUri")},
      "first_seen_at": {text("finding.createTime")},
      "last_seen_at": {text("finding.eventTime")},
      "attributes": {{
        "finding_class": {text("finding.findingClass")},
        "parent": payload.finding.parent,
        "project": {_PROJECT},
        "resource_type": {present("resource")} ? {text("resource.type")} : null
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
      "description": {text("finding.description")},
      "severity": {present("finding.severity")} && payload.finding.severity in {SEVERITY}
          ? {SEVERITY}[payload.finding.severity] : null,
      "cvss_score": {_CVSS} ? double(payload.{_CVE}.cvssv3.baseScore) : null,
      "status": {present("finding.state")} && payload.finding.state in {STATE} ? {STATE}[payload.finding.state] : null,
      "source": "scc",
      "package_name": {present("finding.vulnerability.offendingPackage")}
          ? {text("finding.vulnerability.offendingPackage.packageName")} : null,
      "package_version": {_package("offendingPackage")},
      "fixed_version": {_package("fixedPackage")},
      "resource_identifier": payload.finding.resourceName,
      "url": {present(_CVE + ".references")} && size(payload.{_CVE}.references) > 0
          ? {text(_CVE + ".references[0].uri")} : null,
      "attributes": {{
        "parent": payload.finding.parent,
        "exploitation_activity": {present(_CVE + ".exploitationActivity")}
            && payload.{_CVE}.exploitationActivity != "EXPLOITATION_ACTIVITY_UNSPECIFIED"
            ? {text(_CVE + ".exploitationActivity")} : null
      }}
    }}
    """,
)

MAPPINGS = (THREAT, MISCONFIGURATION, CVE)
