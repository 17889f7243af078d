"""Mappings: assessments and sub-assessments into ``vulnerability`` (two variants).

Azure's severities (``High``, ``Medium``, ``Low``) and status codes (``Healthy``, ``Unhealthy``, ``NotApplicable``)
are lowered through literal maps. Both are open enums in the API specs (``modelAsString``), so a value the map does
not know passes through as Azure sent it instead of failing the record.

Checked against the published examples of the api-versions the operations send (``Azure/azure-rest-api-specs``,
``Microsoft.Security`` ``stable/2021-06-01`` for assessments, ``preview/2019-01-01-preview`` for sub-assessments;
``tests/definitions/test_microsoft_published_examples.py``) and against recorded answers, which differ:

- ``resourceDetails`` is spelled ``source``/``id`` in the specs and ``Source``/``Id`` in recorded answers; both are
  read. An on-premises resource (``OnPremise``, ``OnPremiseSql``) has no ID, only a machine name, which stands in.
- The portal link is ``links.azurePortalUri`` (a full URL) in 2021-06-01, ``links.azurePortal`` (no scheme) in
  older answers; both are read.
- The CVSS score is nested by version, ``additionalData.cvss["3.0"].base`` (else ``"2.0"``), and can be an integer.
- Every optional block (``metadata``, ``additionalData``, ``cve``, ``cvss``, ``resourceDetails``) can be absent or
  null.
"""

from __future__ import annotations

from engine import Mapping
from engine.kit.celpaths import first, optional, present

SEVERITY = (
    '{"High": "high", "Medium": "medium", "Low": "low", "Critical": "critical", "Informational": "informational"}'
)
STATUS = '{"Healthy": "resolved", "Unhealthy": "open", "NotApplicable": "not_applicable"}'


def _lowered(table: str, path: str) -> str:
    """CEL: ``table[value]`` for a known value, the value itself for an unknown one, null for none."""
    return f"(!{present(path)} ? null : (payload.{path} in {table} ? {table}[payload.{path}] : payload.{path}))"


#: The resource an assessment is about, in either spelling; a machine name where there is no resource ID.
RESOURCE = first(
    "properties.resourceDetails.id",
    "properties.resourceDetails.Id",
    "properties.resourceDetails.ResourceId",
    "properties.resourceDetails.machineName",
    "properties.resourceDetails.MachineName",
)
CVSS = "payload.properties.additionalData.cvss"

ASSESSMENT = Mapping(
    schema="vulnerability",
    variant="assessment",
    map=f"""
    {{
      "external_id": payload.id,
      "title": payload.properties.displayName,
      "description": {optional("properties.metadata.description")},
      "severity": {_lowered(SEVERITY, "properties.metadata.severity")},
      "status": {_lowered(STATUS, "properties.status.code")},
      "source": "defender_for_cloud",
      "resource_identifier": {RESOURCE},
      "url": {present("properties.links.azurePortalUri")} ? payload.properties.links.azurePortalUri
          : ({present("properties.links.azurePortal")}
             ? (payload.properties.links.azurePortal.startsWith("https://") ? payload.properties.links.azurePortal
                : "https://" + payload.properties.links.azurePortal)
             : null),
      "attributes": {{
        "assessment_key": {optional("name")},
        "cause": {optional("properties.status.cause")},
        "status_description": {optional("properties.status.description")},
        "first_evaluated_at": {optional("properties.status.firstEvaluationDate")},
        "status_changed_at": {optional("properties.status.statusChangeDate")},
        "resource_source": {first("properties.resourceDetails.source", "properties.resourceDetails.Source")},
        "additional_data": {optional("properties.additionalData")}
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
      "cve_id": {present("properties.additionalData.cve")} && size(payload.properties.additionalData.cve) > 0
          && {present("properties.additionalData.cve[0].title")}
          ? payload.properties.additionalData.cve[0].title : null,
      "cvss_score": !{present("properties.additionalData.cvss")} ? null
          : ("3.0" in {CVSS} && has({CVSS}["3.0"].base) && type({CVSS}["3.0"].base) != null_type
             ? double({CVSS}["3.0"].base)
             : ("2.0" in {CVSS} && has({CVSS}["2.0"].base) && type({CVSS}["2.0"].base) != null_type
                ? double({CVSS}["2.0"].base) : null)),
      "title": payload.properties.displayName,
      "description": {optional("properties.description")},
      "severity": {_lowered(SEVERITY, "properties.status.severity")},
      "status": {_lowered(STATUS, "properties.status.code")},
      "source": "defender_for_cloud",
      "resource_identifier": {RESOURCE},
      "published_at": {optional("properties.additionalData.publishedTime")},
      "attributes": {{
        "finding_id": {optional("properties.id")},
        "category": {optional("properties.category")},
        "remediation": {optional("properties.remediation")},
        "impact": {optional("properties.impact")},
        "cause": {optional("properties.status.cause")},
        "assessed_resource_type": {optional("properties.additionalData.assessedResourceType")},
        "patchable": {optional("properties.additionalData.patchable")},
        "threat": {optional("properties.additionalData.threat")},
        "time_generated": {optional("properties.timeGenerated")}
      }}
    }}
    """,
)

MAPPINGS = (ASSESSMENT, SUB_ASSESSMENT)
