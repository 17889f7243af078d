"""Mappings: assessments and sub-assessments into ``vulnerability`` (two variants).

Azure's severities (``High``, ``Medium``, ``Low``) and status codes (``Healthy``, ``Unhealthy``,
``NotApplicable``) are lowered through literal maps; optional blocks are guarded with ``has()``.
"""

from __future__ import annotations

from engine import Mapping

SEVERITY = '{"High": "high", "Medium": "medium", "Low": "low", "Critical": "critical", ' \
    '"Informational": "informational"}'
STATUS = '{"Healthy": "resolved", "Unhealthy": "open", "NotApplicable": "not_applicable"}'

ASSESSMENT = Mapping(
    schema="vulnerability",
    variant="assessment",
    map=f"""
    {{
      "external_id": payload.id,
      "title": payload.properties.displayName,
      "description": has(payload.properties.metadata) && has(payload.properties.metadata.description)
          ? payload.properties.metadata.description : null,
      "severity": has(payload.properties.metadata) && has(payload.properties.metadata.severity)
          ? {SEVERITY}[payload.properties.metadata.severity] : null,
      "status": {STATUS}[payload.properties.status.code],
      "source": "defender_for_cloud",
      "resource_identifier": has(payload.properties.resourceDetails.Id) ? payload.properties.resourceDetails.Id
          : (has(payload.properties.resourceDetails.ResourceId) ? payload.properties.resourceDetails.ResourceId
          : null),
      "url": has(payload.properties.links) && has(payload.properties.links.azurePortal)
          ? "https://" + payload.properties.links.azurePortal : null,
      "attributes": {{
        "assessment_key": payload.name,
        "cause": has(payload.properties.status.cause) ? payload.properties.status.cause : null,
        "first_evaluated_at": has(payload.properties.status.firstEvaluationDate)
            ? payload.properties.status.firstEvaluationDate : null
      }}
    }}
    """,
)

SUB_ASSESSMENT = Mapping(
    schema="vulnerability",
    variant="sub_assessment",
    map=f"""
    {{
      "external_id": payload.id,
      "cve_id": has(payload.properties.additionalData) && has(payload.properties.additionalData.cve) &&
          size(payload.properties.additionalData.cve) > 0 ? payload.properties.additionalData.cve[0].title : null,
      "title": payload.properties.displayName,
      "description": has(payload.properties.description) ? payload.properties.description : null,
      "severity": has(payload.properties.status.severity) ? {SEVERITY}[payload.properties.status.severity] : null,
      "status": {STATUS}[payload.properties.status.code],
      "source": "defender_for_cloud",
      "resource_identifier": has(payload.properties.resourceDetails.id) ? payload.properties.resourceDetails.id
          : null,
      "published_at": has(payload.properties.additionalData) &&
          has(payload.properties.additionalData.publishedTime) ? payload.properties.additionalData.publishedTime
          : null,
      "attributes": {{
        "finding_id": payload.properties.id,
        "category": has(payload.properties.category) ? payload.properties.category : null,
        "remediation": has(payload.properties.remediation) ? payload.properties.remediation : null,
        "assessed_resource_type": has(payload.properties.additionalData) &&
            has(payload.properties.additionalData.assessedResourceType)
            ? payload.properties.additionalData.assessedResourceType : null,
        "time_generated": has(payload.properties.timeGenerated) ? payload.properties.timeGenerated : null
      }}
    }}
    """,
)

MAPPINGS = (ASSESSMENT, SUB_ASSESSMENT)
