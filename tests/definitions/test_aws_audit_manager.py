"""AWS Audit Manager in the consolidated AWS definition, against botocore's ``Stubber``.

moto does not implement Audit Manager (its server answers 500, "Unable to find appropriate backend"), so each
call is answered by ``Stubber``, which checks our request parameters and the canned response against botocore's
service model: a request or response AWS would not send is a ``ParamValidationError``. The responses are the wire
bodies of ``fixtures/aws_security_hub/audit_manager.json`` parsed by botocore's own rest-json parser, so what the
operations receive is what boto3 hands them from AWS (timestamps as ``datetime``, absent fields absent).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.parsers import create_parser
from botocore.stub import Stubber
from pydantic import SecretStr
from tests.definitions.test_aws_security_hub import collect, ingest, model, run

from definitions.aws_security_hub import definition
from definitions.aws_security_hub.audit_manager import (
    EVIDENCE_PAGE_SIZE,
    LIST_PAGE_SIZE,
    AuditAssessmentSync,
    AuditEvidenceSync,
)
from definitions.aws_security_hub.aws import DEFAULT_RETRY_AFTER
from definitions.aws_security_hub.client import AwsApi, SecurityHubClient
from definitions.aws_security_hub.config import AwsSecurityHubConfig
from definitions.aws_security_hub.operations import WindowConfig
from definitions.aws_security_hub.slots import AwsAccessKeys
from engine import ClientContext, OperationContext, Payload, ProviderError, TetherError
from engine.catalog.registry import Registry
from ingest.models.finding import Finding

FIXTURES = Path(__file__).parents[1] / "fixtures" / "aws_security_hub" / "audit_manager.json"
SOC2 = "3f9b2c1a-7d4e-4a8b-9c2d-1e0f5a6b7c8d"
CIS = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
SOC2_ARN = f"arn:aws:auditmanager:us-east-1:111122223333:assessment/{SOC2}"
ACCESS_SET = "CC6 Logical and Physical Access Controls"
OPERATIONS_SET = "CC7 System Operations"
TODAY_FOLDER = "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a"
YESTERDAY_FOLDER = "8a7f6e5d-4c3b-4a2f-9e1d-0c9b8a7f6e5d"


# -- fixtures: wire bodies, parsed the way boto3 parses AWS's answers ---------------------------------------------


class Clock:
    """The fixture's relative times, fixed once per test (evidence is windowed against the run's start)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.recent = self.now - timedelta(hours=1)
        self.yesterday = self.now - timedelta(days=1)
        self.old = self.now - timedelta(days=60)
        self.created = self.now - timedelta(days=45)

    def fill(self, value: Any) -> Any:
        times = {"@recent": self.recent, "@yesterday": self.yesterday, "@old": self.old, "@created": self.created}
        if isinstance(value, dict):
            return {key: self.fill(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.fill(item) for item in value]
        if value in times:
            return times[value].timestamp()  # rest-json sends epoch seconds
        if value == "@folder_today":
            return self.recent.date().isoformat()
        if value == "@folder_old":
            return self.old.date().isoformat()
        return value


@pytest.fixture
def clock() -> Clock:
    return Clock()


def body(clock: Clock, name: str) -> dict[str, Any]:
    return clock.fill(json.loads(FIXTURES.read_text())[name])


def parsed(client: Any, operation: str, wire: dict[str, Any]) -> dict[str, Any]:
    """What boto3 returns for this HTTP 200 body: botocore's rest-json parser against the operation's output."""
    shape = client.meta.service_model.operation_model(operation).output_shape
    answer = create_parser("rest-json").parse(
        {"body": json.dumps(wire).encode(), "headers": {}, "status_code": 200}, shape
    )
    answer.pop("ResponseMetadata", None)
    return answer


class Script:
    """The calls one run makes, in order; ``Stubber`` fails the test on any other call or any invalid shape."""

    def __init__(self, api: AwsApi, clock: Clock) -> None:
        self.api, self.clock = api, clock
        self.stub = Stubber(api.auditmanager)

    def answer(self, method: str, fixture: str | dict[str, Any], **params: Any) -> Script:
        operation = self.api.auditmanager.meta.method_to_api_mapping[method]
        wire = body(self.clock, fixture) if isinstance(fixture, str) else fixture
        self.stub.add_response(method, parsed(self.api.auditmanager, operation, wire), params)
        return self

    def fail(self, method: str, code: str, http_status: int, message: str, **params: Any) -> Script:
        self.stub.add_client_error(
            method,
            service_error_code=code,
            service_message=message,
            http_status_code=http_status,
            expected_params=params or None,
        )
        return self

    def enabled(self) -> Script:
        return self.answer("get_account_status", "account_status")

    def throttled_then_read(self) -> Script:
        """A run whose ``ListAssessments`` AWS throttles (the message names the account), then its full retry."""
        error = "Rate exceeded for account 111122223333"
        self.enabled().fail(
            "list_assessments", "ThrottlingException", 429, error, status="ACTIVE", maxResults=LIST_PAGE_SIZE
        )
        return self.enabled().assessments().second_page()

    def assessments(self) -> Script:
        """Both pages of ``ListAssessments``, each followed by the ``GetAssessment`` of what it listed."""
        return self.answer(
            "list_assessments", "list_assessments_page_1", status="ACTIVE", maxResults=LIST_PAGE_SIZE
        ).answer("get_assessment", "get_assessment_soc2", assessmentId=SOC2)

    def second_page(self) -> Script:
        return self.answer(
            "list_assessments",
            "list_assessments_page_2",
            status="ACTIVE",
            maxResults=LIST_PAGE_SIZE,
            nextToken="cGFnZTI=",
        ).answer("get_assessment", "get_assessment_cis", assessmentId=CIS)

    @contextmanager
    def active(self) -> Iterator[Stubber]:
        with self.stub:
            yield self.stub
            self.stub.assert_no_pending_responses()  # every scripted call was made


def keys_api() -> AwsApi:
    """A real client built by the definition; the stub answers before anything is signed or sent."""
    config = AwsSecurityHubConfig(external_id_secret=SecretStr("operator-external-id-secret"))
    credential = AwsAccessKeys(access_key_id="AKIACUSTOMERKEYS001", secret_access_key=SecretStr("x"))
    return SecurityHubClient().build(ClientContext("int_audit", credential, config, None))


def op_context(api: AwsApi, cursor: Any = None) -> OperationContext:
    return OperationContext(
        integration_id="int_audit",
        tenant_id="tenant_1",
        config=WindowConfig(),
        client=api,
        operator_config=None,
        user_input=None,
        cursor=cursor,
    )


def findings(payloads: list[Payload], operation: type[Any]) -> list[Finding]:
    """Payloads through the registry's compiled CEL mappings and the shared ingest path, as ``Finding`` models."""
    return [model(Finding, record) for record in ingest(payloads, operation)]


# -- registration ---------------------------------------------------------------------------------------------


def test_audit_manager_operations_are_registered_read_only() -> None:
    registry = Registry()
    registry.register(definition)
    for variant in ("audit_control", "audit_evidence"):
        assert registry.mapping("aws_security_hub", "finding", variant) is not None
    for operation in (AuditAssessmentSync, AuditEvidenceSync):
        assert operation in definition.operations
        assert operation.policy.access == "read" and operation.policy.users_may_run
        assert operation.policy.reconcile and operation.policy.schedule == timedelta(hours=6)


# -- assessments: ListAssessments (paged) then GetAssessment ----------------------------------------------------


def test_assessment_sync_pages_assessments_and_maps_each_control(clock: Clock) -> None:
    api = keys_api()
    script = Script(api, clock).enabled().assessments().second_page()
    with script.active():
        payloads = run(collect(AuditAssessmentSync().ingest(op_context(api))))
    assert [(p.schema, p.variant, p.resource) for p in payloads] == [("finding", "audit_control", "control")] * 3
    by_id = {f.attributes["control_id"]: f for f in findings(payloads, AuditAssessmentSync)}

    full = by_id["0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"]
    assert full.external_id == (
        f"auditmanager:assessment/{SOC2}/controlSet/{ACCESS_SET}/control/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    )
    assert (full.title, full.status, full.category, full.source) == (
        "CC6.1 - S3 buckets block public access",
        "under_review",
        ACCESS_SET,
        "audit_manager",
    )
    assert full.description.startswith("The entity implements logical access security")
    assert full.severity is None and full.resource_identifier == SOC2_ARN
    assert (full.first_seen_at, full.last_seen_at) == (clock.created, clock.recent)
    assert full.attributes == {
        "assessment_id": SOC2,
        "assessment_name": "SOC 2 readiness 2026",
        "framework": "SOC 2",
        "compliance_type": "SOC2",
        "account_id": "111122223333",
        "control_id": "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
        "control_set_status": "ACTIVE",
        "response": "AUTOMATE",
        "evidence_count": 42,
        "report_evidence_count": 3,
        "evidence_sources": ["AWS Security Hub", "AWS Config"],
        "comment_count": 1,
    }

    # A control with nothing but its ID (every member of AssessmentControl is optional in the model).
    bare = by_id["1b2c3d4e-5f6a-4b7c-9d8e-0f1a2b3c4d5e"]
    assert bare.title == "1b2c3d4e-5f6a-4b7c-9d8e-0f1a2b3c4d5e"
    assert (bare.description, bare.status, bare.recommendation, bare.url) == (None, None, None, None)
    assert bare.attributes["response"] is None and bare.attributes["evidence_count"] is None
    assert (bare.attributes["evidence_sources"], bare.attributes["comment_count"]) == ([], 0)

    reviewed = by_id["2c3d4e5f-6a7b-4c8d-8e9f-1a2b3c4d5e6f"]
    assert (reviewed.status, reviewed.category, reviewed.attributes["control_set_status"]) == (
        "reviewed",
        OPERATIONS_SET,
        "REVIEWED",
    )
    # The CIS assessment on the second page has no control sets: read, nothing emitted.
    assert {f.attributes["assessment_id"] for f in by_id.values()} == {SOC2}


def test_an_empty_account_syncs_nothing_and_succeeds(clock: Clock) -> None:
    api = keys_api()
    empty = {"assessmentMetadata": []}
    script = (
        Script(api, clock)
        .enabled()
        .answer("list_assessments", empty, status="ACTIVE", maxResults=LIST_PAGE_SIZE)
        .enabled()
        .answer("list_assessments", empty, status="ACTIVE", maxResults=LIST_PAGE_SIZE)
    )
    with script.active():
        assert run(collect(AuditAssessmentSync().ingest(op_context(api)))) == []
        ctx = op_context(api)
        assert run(collect(AuditEvidenceSync().ingest(ctx))) == []
    assert datetime.fromisoformat(ctx.next_cursor) >= clock.now  # an empty run is a successful one


def test_audit_manager_not_set_up_is_not_enabled(clock: Clock) -> None:
    api = keys_api()
    script = Script(api, clock).answer("get_account_status", {"status": "INACTIVE"})
    with script.active(), pytest.raises(ProviderError) as caught:
        run(collect(AuditAssessmentSync().ingest(op_context(api))))
    assert caught.value.code == "not_enabled" and "Audit Manager" in str(caught.value)


# -- evidence: folders (paged, windowed), then compliance-check evidence (paged) ---------------------------------


def evidence_script(api: AwsApi, clock: Clock) -> Script:
    """The calls of one evidence run over both assessments; folders outside the window or without compliance
    checks are not read (an unexpected call would not match the next scripted one)."""
    folders = {"assessmentId": SOC2, "maxResults": LIST_PAGE_SIZE}
    evidence = {
        "assessmentId": SOC2,
        "controlSetId": ACCESS_SET,
        "evidenceFolderId": TODAY_FOLDER,
        "maxResults": EVIDENCE_PAGE_SIZE,
    }
    return (
        Script(api, clock)
        .enabled()
        .assessments()
        .answer("get_evidence_folders_by_assessment", "evidence_folders_page_1", **folders)
        .answer("get_evidence_by_evidence_folder", "evidence_page_1", **evidence)
        .answer("get_evidence_by_evidence_folder", "evidence_page_2", **evidence, nextToken="ZXZpZGVuY2Uy")
        # the 60-day-old folder is skipped; page 2 of the folders follows
        .answer("get_evidence_folders_by_assessment", "evidence_folders_page_2", **folders, nextToken="Zm9sZGVyczI=")
        # CC7's folder has no compliance checks (count 0); the undated folder without counts is read
        .answer(
            "get_evidence_by_evidence_folder",
            "evidence_yesterday",
            assessmentId=SOC2,
            controlSetId=OPERATIONS_SET,
            evidenceFolderId=YESTERDAY_FOLDER,
            maxResults=EVIDENCE_PAGE_SIZE,
        )
        .second_page()
        .answer(
            "get_evidence_folders_by_assessment", {"evidenceFolders": []}, assessmentId=CIS, maxResults=LIST_PAGE_SIZE
        )
    )


def test_evidence_sync_reads_compliance_checks_of_the_window(clock: Clock) -> None:
    api = keys_api()
    ctx = op_context(api)
    with evidence_script(api, clock).active():
        payloads = run(collect(AuditEvidenceSync().ingest(ctx)))
    # Of four evidence records: the configuration snapshot has no compliance check, and one check is older than
    # the window; the other two are findings.
    assert [(p.variant, p.resource) for p in payloads] == [("audit_evidence", "evidence")] * 2
    assert datetime.fromisoformat(ctx.next_cursor) >= clock.now
    failed, passed = findings(payloads, AuditEvidenceSync)

    assert failed.external_id == f"auditmanager:assessment/{SOC2}/evidence/9b8a7f6e-5d4c-4b3a-8f2e-1d0c9b8a7f6e"
    assert (failed.title, failed.status, failed.source) == (
        "CC6.1 - S3 buckets block public access",
        "failed",
        "audit_manager",
    )
    assert failed.description == "S3.8 S3 general purpose buckets should block public access"
    assert (failed.category, failed.resource_identifier) == ("Compliance check", "arn:aws:s3:::acme-logs")
    assert failed.first_seen_at == failed.last_seen_at == clock.recent
    assert failed.attributes == {
        "assessment_id": SOC2,
        "assessment_name": "SOC 2 readiness 2026",
        "control_set_id": ACCESS_SET,
        "control_id": "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
        "evidence_folder_id": TODAY_FOLDER,
        "compliance_check": "NON_COMPLIANT",
        "data_source": "AWS Security Hub",
        "event_source": "securityhub.amazonaws.com",
        "account_id": "111122223333",
        "resources": [{"arn": "arn:aws:s3:::acme-logs", "value": "acme-logs", "complianceCheck": "NON_COMPLIANT"}],
        "evidence_attributes": {"findingComplianceStatus": "FAILED", "securityControlId": "S3.8"},
    }

    # Evidence with only an ID and its verdict: what the folder and the assessment know fills the rest.
    assert passed.external_id.endswith("/evidence/1d0c9b8a-7f6e-4d5c-8b4a-3f2e1d0c9b8a")
    assert (passed.title, passed.status) == ("CC6.1 - S3 buckets block public access", "passed")
    assert (passed.description, passed.category, passed.resource_identifier) == (None, None, None)
    assert (passed.first_seen_at, passed.last_seen_at, passed.severity) == (None, None, None)
    assert passed.attributes["data_source"] == "AWS Security Hub"  # the folder's
    assert passed.attributes["account_id"] == "111122223333"  # the assessment's account
    assert (passed.attributes["resources"], passed.attributes["evidence_attributes"]) == ([], {})


def test_an_unknown_verdict_is_kept_raw_as_not_available(clock: Clock) -> None:
    payload = Payload(
        schema="finding",
        variant="audit_evidence",
        resource="evidence",
        data={
            "assessment": {"id": SOC2, "name": None, "account_id": None},
            "folder": {
                "id": TODAY_FOLDER,
                "name": None,
                "controlSetId": ACCESS_SET,
                "controlId": None,
                "controlName": None,
                "dataSource": None,
            },
            "evidence": {"id": "3f2e1d0c-9b8a-4f7e-8d6c-5b4a3f2e1d0c", "complianceCheck": "WARNING"},
        },
    )
    [finding] = findings([payload], AuditEvidenceSync)
    assert (finding.title, finding.status) == ("Audit Manager evidence", "not_available")
    assert finding.attributes["compliance_check"] == "WARNING"


def test_a_later_cursor_skips_older_folders(clock: Clock) -> None:
    """A run from a cursor reads only folders dated from a day before it: the count-less folder, now three days
    old, and the 60-day-old one are skipped; today's is read, and its hour-old evidence is before the window."""
    api = keys_api()
    cursor = (clock.now - timedelta(minutes=30)).isoformat()
    evidence = {
        "assessmentId": SOC2,
        "controlSetId": ACCESS_SET,
        "evidenceFolderId": TODAY_FOLDER,
        "maxResults": EVIDENCE_PAGE_SIZE,
    }
    folders = {"assessmentId": SOC2, "maxResults": LIST_PAGE_SIZE}
    older = body(clock, "evidence_folders_page_2")
    older["evidenceFolders"][1]["date"] = (clock.now - timedelta(days=3)).timestamp()
    script = (
        Script(api, clock)
        .enabled()
        .assessments()
        .answer("get_evidence_folders_by_assessment", "evidence_folders_page_1", **folders)
        .answer("get_evidence_by_evidence_folder", "evidence_page_1", **evidence)
        .answer("get_evidence_by_evidence_folder", {"evidence": []}, **evidence, nextToken="ZXZpZGVuY2Uy")
        .answer("get_evidence_folders_by_assessment", older, **folders, nextToken="Zm9sZGVyczI=")
        .second_page()
        .answer(
            "get_evidence_folders_by_assessment", {"evidenceFolders": []}, assessmentId=CIS, maxResults=LIST_PAGE_SIZE
        )
    )
    with script.active():
        payloads = run(collect(AuditEvidenceSync().ingest(op_context(api, cursor=cursor))))
    assert payloads == []


# -- errors: throttling is deferred, refusals are unauthorized, broken paging stops --------------------------------


def test_throttling_is_rate_limited_then_the_retry_succeeds(clock: Clock) -> None:
    api = keys_api()
    script = Script(api, clock).throttled_then_read()
    with script.active():
        with pytest.raises(ProviderError) as caught:
            run(collect(AuditAssessmentSync().ingest(op_context(api))))
        # The queue defers the run by retry_after and runs it again: the retry reads everything.
        assert len(run(collect(AuditAssessmentSync().ingest(op_context(api))))) == 3
    error = caught.value
    assert (error.code, error.retry_after) == ("rate_limited", DEFAULT_RETRY_AFTER)
    assert "111122223333" not in str(error) and "Rate exceeded" not in str(error)


def test_access_denied_is_unauthorized(clock: Clock) -> None:
    api = keys_api()
    script = Script(api, clock).fail(
        "get_account_status", "AccessDeniedException", 403, "User: arn:aws:iam::111122223333:user/x is not authorized"
    )
    with script.active(), pytest.raises(ProviderError) as caught:
        run(collect(AuditEvidenceSync().ingest(op_context(api))))
    assert caught.value.code == "unauthorized" and "111122223333" not in str(caught.value)


def test_a_repeated_next_token_stops_the_run(clock: Clock) -> None:
    api = keys_api()
    page = body(clock, "list_assessments_page_1")
    page["assessmentMetadata"] = []
    script = (
        Script(api, clock)
        .enabled()
        .answer("list_assessments", page, status="ACTIVE", maxResults=LIST_PAGE_SIZE)
        .answer("list_assessments", page, status="ACTIVE", maxResults=LIST_PAGE_SIZE, nextToken="cGFnZTI=")
    )
    with script.active(), pytest.raises(ProviderError) as caught:
        run(collect(AuditAssessmentSync().ingest(op_context(api))))
    assert "repeated a nextToken" in str(caught.value)


def test_audit_manager_calls_go_through_the_egress_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unstubbed, the Audit Manager client sends through egress: an endpoint on 127.0.0.1 is refused."""
    config = AwsSecurityHubConfig(external_id_secret=SecretStr("s"), endpoint_url="http://127.0.0.1:9")
    credential = AwsAccessKeys(access_key_id="AKIACUSTOMERKEYS001", secret_access_key=SecretStr("x"))
    api = SecurityHubClient().build(ClientContext("int_audit", credential, config, None))
    with pytest.raises(TetherError) as caught:
        run(collect(AuditAssessmentSync().ingest(op_context(api))))
    assert caught.value.code == "egress_refused"
