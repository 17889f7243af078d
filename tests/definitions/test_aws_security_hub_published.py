"""Security Hub's vulnerability mapping against AWS's own published ASFF example (``Vulnerabilities``, source named
in ``tests/fixtures/aws_security_hub/published/vulnerabilities.json``), on the finding this suite's Inspector
fixture carries, and the variations ASFF allows: every attribute of a vulnerability but ``Id`` is optional, and a
finding lists a CVSS score per version."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from definitions.aws_security_hub import definition
from definitions.aws_security_hub.operations import FindingSync
from engine import Payload
from engine.catalog.registry import Registry
from ingest.pipeline import IngestContext, IngestPipeline

FIXTURES = Path(__file__).parents[1] / "fixtures" / "aws_security_hub"


def finding() -> dict[str, Any]:
    text = (FIXTURES / "findings.json").read_text()
    text = text.replace("{account}", "123456789012").replace("{updated}", "2026-11-01T00:00:00.000Z")
    return json.loads(text)["inspector"]


def published() -> dict[str, Any]:
    recorded = json.loads((FIXTURES / "published" / "vulnerabilities.json").read_text())
    assert recorded["source"].startswith("awsdocs/")
    [vulnerability] = recorded["Vulnerabilities"]
    return vulnerability


def land(vulnerability: dict[str, Any]) -> Any:
    registry = Registry()
    registry.register(definition)
    ctx = IngestContext(tenant_id="t", integration_id="i", definition_id="aws_security_hub", emits=FindingSync.emits)
    payload = Payload(
        "vulnerability", {"finding": finding(), "vulnerability": vulnerability}, variant="software", resource="finding"
    )
    [outcome] = IngestPipeline(registry).dry_run(ctx, [payload])
    assert outcome.status == "mapped", outcome.reason
    return outcome.object


def test_the_published_vulnerability_lands_every_field() -> None:
    row = land(published())
    assert (row.cve_id, row.cvss_score, row.package_name, row.package_version, row.fixed_version) == (
        "CVE-2020-12345",
        4.7,
        "openssl",
        "1.0.2k",
        None,
    )
    assert row.url == "http://cve.mitre.org/cgi-bin/cvename.cgi?name=CVE-2019-12418"
    assert row.published_at == datetime(2020, 1, 16, 0, 1, 43, tzinfo=UTC)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # The v3 score wins wherever it stands in the list.
        ({"Cvss": [{"BaseScore": 5.0, "Version": "V2"}, {"BaseScore": 7.5, "Version": "3.1"}]}, {"cvss_score": 7.5}),
        # BaseScore is optional: an entry without one is skipped, not a failed record.
        ({"Cvss": [{"Version": "V3", "BaseVector": "AV:N"}, {"BaseScore": 6.1, "Version": "V2"}]}, {"cvss_score": 6.1}),
        ({"Cvss": [{"Version": "V3"}]}, {"cvss_score": None}),
        ({"Cvss": []}, {"cvss_score": None}),
        # Name is optional on a vulnerable package.
        (
            {"VulnerablePackages": [{"Version": "1.0.2k", "PackageManager": "OS"}]},
            {"package_name": None, "package_version": "1.0.2k"},
        ),
    ],
)
def test_optional_vulnerability_attributes_never_fail_the_record(
    change: dict[str, Any], expected: dict[str, Any]
) -> None:
    row = land({**published(), **change})
    assert {k: getattr(row, k) for k in expected} == expected


def test_only_the_id_is_required() -> None:
    row = land({"Id": "GHSA-abcd-1234-efgh"})
    assert (row.cve_id, row.cvss_score, row.package_name, row.url, row.published_at) == (None, None, None, None, None)
