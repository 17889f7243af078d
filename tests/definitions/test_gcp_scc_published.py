"""Security Command Center's mappings against Google's own published finding samples, not only fixtures written here.

The samples (``tests/fixtures/gcp_scc/published/chronicle_sample_findings.json``, source named inside) are the
ones Google publishes per finding class. The client calls v1 (``/v1/{parent}/sources/-/findings``); a v1
``ListFindingsResult`` is ``{finding, resource}`` with the camelCase field names these samples use.

What they caught (docs/decisions.md): Google serves proto3 JSON, so an unset string is ``""`` (``externalUri``
landed as an empty link) and an unset CVE block is ``{"id": "", "cvssv3": {"baseScore": 0, ...}}`` (a
``VULNERABILITY`` finding carrying one would have landed as a CVE with no id and a 0.0 score); the project name
of a location-scoped finding sits in ``resource.gcpMetadata.projectDisplayName`` and was lost.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from definitions.gcp_scc import definition
from definitions.gcp_scc.operations import FindingsSync, classify
from support.published import land, recorded


def samples() -> dict[str, dict[str, Any]]:
    body = recorded("gcp_scc", "chronicle_sample_findings", sources=("Google Cloud documentation",))
    return {
        r["sample"].removeprefix("GCP_SECURITYCENTER_"): {k: v for k, v in r.items() if k != "sample"}
        for r in body["results"]
    }


def test_every_published_sample_lands_as_a_finding() -> None:
    results = samples()
    payloads = [classify(results[name]) for name in ("OBSERVATION", "VULNERABILITY", "SENSITIVE_DATA_RISK")]
    assert [(p.schema, p.variant) for p in payloads] == [("finding", "misconfiguration")] * 3
    observation, clear_text, sensitive = land(definition, FindingsSync, payloads)

    assert (observation.title, observation.severity, observation.status) == (
        "Persistence: Project SSH Key Added",
        "low",
        "open",
    )
    assert observation.resource_identifier == "//compute.googleapis.com/projects/spring-banner-350111"
    assert observation.first_seen_at == datetime(2022, 11, 10, 18, 33, 7, 631000, tzinfo=UTC)
    assert (observation.description, observation.url) == (None, None)
    assert observation.attributes["finding_class"] == "OBSERVATION"

    assert clear_text.url == "https://sample.dummy.com/"
    assert clear_text.description.startswith("An application appears to be transmitting a password")
    assert clear_text.attributes["finding_class"] == "VULNERABILITY"

    # Proto3's unset string: an empty externalUri is no link.
    assert (sensitive.status, sensitive.severity, sensitive.url) == ("resolved", "critical", None)
    assert sensitive.recommendation.startswith("1. Follow the remediation steps")
    assert sensitive.attributes["project"] == "ci-sdw-ext-flx-ab8613-1501"
    assert sensitive.attributes["resource_type"] == "google.cloud.storage.Bucket"


def test_a_vulnerability_finding_with_an_unset_cve_block_is_not_a_cve() -> None:
    result = samples()["VULNERABILITY"]
    result["finding"]["vulnerability"] = copy.deepcopy(samples()["SENSITIVE_DATA_RISK"]["finding"]["vulnerability"])
    payload = classify(result)
    assert (payload.schema, payload.variant) == ("finding", "misconfiguration")
    [row] = land(definition, FindingsSync, [payload])
    assert row.title == "CLEAR_TEXT_PASSWORD"


def test_a_cve_with_proto3_defaults_lands_no_zero_score_and_no_empty_versions() -> None:
    result = samples()["SENSITIVE_DATA_RISK"]
    result["finding"]["findingClass"] = "VULNERABILITY"
    result["finding"]["vulnerability"]["cve"]["id"] = "CVE-2023-44487"
    payload = classify(result)
    assert (payload.schema, payload.variant) == ("vulnerability", "cve")
    [row] = land(definition, FindingsSync, [payload])
    assert (row.cve_id, row.cvss_score, row.package_name, row.package_version, row.fixed_version, row.url) == (
        "CVE-2023-44487",
        None,
        None,
        None,
        None,
        None,
    )
    assert row.attributes["exploitation_activity"] is None


def test_a_cve_lands_its_nested_score_and_packages_under_v1_names() -> None:
    result = samples()["SENSITIVE_DATA_RISK"]
    finding = result["finding"]
    finding["findingClass"] = "VULNERABILITY"
    cve = finding["vulnerability"]["cve"]
    cve.update(
        id="CVE-2023-44487",
        exploitationActivity="WIDE",
        references=[{"source": "NVD", "uri": "https://nvd.nist.gov/vuln/detail/CVE-2023-44487"}],
    )
    cve["cvssv3"]["baseScore"] = 7.5
    finding["vulnerability"]["offendingPackage"].update(packageName="nghttp2", packageVersion="1.51.0")
    finding["vulnerability"]["fixedPackage"].update(packageName="nghttp2", packageVersion="1.57.0")
    [row] = land(definition, FindingsSync, [classify(result)])
    assert (row.cvss_score, row.package_name, row.package_version, row.fixed_version) == (
        7.5,
        "nghttp2",
        "1.51.0",
        "1.57.0",
    )
    assert row.url == "https://nvd.nist.gov/vuln/detail/CVE-2023-44487"
    assert row.attributes["exploitation_activity"] == "WIDE"
