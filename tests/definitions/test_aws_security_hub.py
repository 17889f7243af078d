"""AWS Security Hub against moto in server mode on 127.0.0.1: real boto3 calls, real STS role assumption.

moto ignores ``GetFindings`` filters, so the sync's client-side window is what these tests see working. Throttling
and refused credentials, which moto never produces, come from botocore's ``Stubber`` (checked against AWS's
service model).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.stub import Stubber
from moto.server import ThreadedMotoServer
from moto.sts.models import sts_backends
from pydantic import SecretStr, ValidationError

from definitions.aws_security_hub import definition, transport
from definitions.aws_security_hub.aws import DEFAULT_RETRY_AFTER
from definitions.aws_security_hub.client import AwsApi, SecurityHubClient
from definitions.aws_security_hub.config import AwsSecurityHubConfig
from definitions.aws_security_hub.connections import AwsKeysConnection, AwsRoleConnection
from definitions.aws_security_hub.external_id import external_id_for
from definitions.aws_security_hub.operations import FindingSync, HealthCheck, ResourceSync, WindowConfig
from definitions.aws_security_hub.slots import AwsAccessKeys, AwsAssumeRole
from engine import ClientContext, ConnectionContext, OperationContext, Payload, ProviderError, TetherError
from engine.catalog.registry import Registry
from engine.kit.egress import LOOPBACK_ENV
from ingest.models.asset import Asset
from ingest.models.finding import Finding
from ingest.models.vulnerability import Vulnerability
from ingest.pipeline import IngestContext, IngestPipeline
from support.trickle import TRICKLE_BYTES, SlowAnswer, http_head, trickle_server

FIXTURES = Path(__file__).parents[1] / "fixtures" / "aws_security_hub"
DEFAULT_ACCOUNT = "123456789012"  # moto's account for plain dummy keys
CUSTOMER_ACCOUNT = "111122223333"  # the account of the role Tether assumes
ROLE_ARN = f"arn:aws:iam::{CUSTOMER_ACCOUNT}:role/TetherSecurityHubRead"
SECRET = "operator-external-id-secret"


# -- moto server -------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def endpoint(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    httpx.post(f"{moto_url}/moto-api/reset")  # every test starts with empty accounts
    monkeypatch.setenv(LOOPBACK_ENV, "1")  # boto3 sends through the egress client, which refuses 127.0.0.1 else
    return moto_url


def operator_config(endpoint: str) -> AwsSecurityHubConfig:
    return AwsSecurityHubConfig(external_id_secret=SecretStr(SECRET), access_key_id="AKIATETHEROPERATOR01",
                                secret_access_key=SecretStr("tether-operator-secret"),
                                principal_arn="arn:aws:iam::999999999999:role/tether", endpoint_url=endpoint)


def asff(name: str, account: str, updated: datetime) -> dict[str, Any]:
    text = json.dumps(json.loads((FIXTURES / "findings.json").read_text())[name])
    old = (updated - timedelta(days=60)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    values = {"{account}": account, "{updated}": updated.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "{old}": old}
    for key, value in values.items():
        text = text.replace(key, value)
    return json.loads(text)


def import_findings(endpoint: str, account: str, names: list[str], updated: datetime) -> None:
    """Import ASFF findings with boto3 into ``account`` (a customer account is reached by assuming the role)."""
    hub = hub_client(endpoint, account)
    hub.enable_security_hub()
    if names:
        answer = hub.batch_import_findings(Findings=[asff(n, account, updated) for n in names])
        assert answer["FailedCount"] == 0, answer["FailedFindings"]


def hub_client(endpoint: str, account: str) -> Any:
    if account == DEFAULT_ACCOUNT:
        session = boto3.Session(aws_access_key_id="AKIACUSTOMERKEYS001", aws_secret_access_key="x")
    else:
        sts = boto3.client("sts", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="AKIASETUP0000000001", aws_secret_access_key="x")
        temp = sts.assume_role(RoleArn=ROLE_ARN, RoleSessionName="setup")["Credentials"]
        session = boto3.Session(aws_access_key_id=temp["AccessKeyId"], aws_secret_access_key=temp["SecretAccessKey"],
                                aws_session_token=temp["SessionToken"])
    return session.client("securityhub", endpoint_url=endpoint, region_name="us-east-1")


def role_client(endpoint: str, integration_id: str = "int_aws") -> AwsApi:
    credential = AwsAssumeRole(role_arn=ROLE_ARN, region="us-east-1")
    return SecurityHubClient().build(ClientContext(integration_id, credential, operator_config(endpoint), None))


def keys_client(endpoint: str) -> AwsApi:
    credential = AwsAccessKeys(access_key_id="AKIACUSTOMERKEYS001", secret_access_key=SecretStr("x"))
    return SecurityHubClient().build(ClientContext("int_keys", credential, operator_config(endpoint), None))


def op_context(api: AwsApi, cursor: Any = None, config: WindowConfig | None = None) -> OperationContext:
    return OperationContext(integration_id="int_aws", tenant_id="tenant_1", config=config or WindowConfig(),
                            client=api, operator_config=None, user_input=None, cursor=cursor)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def collect(items: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in items]


def ingest(payloads: list[Payload], operation: type[Any]) -> list[Any]:
    """Payloads through the registry's compiled mappings and the shared ingest path (no database)."""
    registry = Registry()
    registry.register(definition)
    ctx = IngestContext(tenant_id="tenant_1", integration_id="int_aws", definition_id="aws_security_hub",
                        emits=operation.emits, origin=operation.operation_id())
    outcomes = IngestPipeline(registry).dry_run(ctx, payloads)
    assert [o.status for o in outcomes] == ["mapped"] * len(payloads), [o.reason for o in outcomes]
    return [o.object for o in outcomes]


def model(cls: type[Any], record: Any) -> Any:
    return cls.model_validate({**record.model_dump(), "tenant_id": "tenant_1", "integration_id": "int_aws",
                               "definition_id": "aws_security_hub"})


# -- registration and the external ID ----------------------------------------------------------------------------


def test_definition_registers() -> None:
    for registry in (Registry(), Registry(allow_loopback=False)):
        registry.register(definition)
        for key in (("finding", "control"), ("finding", "detection"), ("vulnerability", "software"),
                    ("asset", "aws_resource")):
            assert registry.mapping("aws_security_hub", *key) is not None
    assert set(definition.manual_slots()) == {AwsAssumeRole, AwsAccessKeys}


def test_external_id_is_derived_never_chosen() -> None:
    first = external_id_for("int_a", SECRET)
    assert first == external_id_for("int_a", SECRET)  # stable: setup can show it before the role exists
    assert first != external_id_for("int_b", SECRET) != external_id_for("int_a", "another secret")
    assert first.startswith("tether-") and len(first) == 39
    with pytest.raises(ValidationError):  # the slot has no place for a user-chosen one
        AwsAssumeRole.model_validate({"role_arn": ROLE_ARN, "external_id": "chosen"})
    with pytest.raises(ValidationError):
        AwsAssumeRole(role_arn="arn:aws:iam::12:role/x")
    details = AwsRoleConnection.setup_details("int_a", operator_config("https://sts.amazonaws.com"))
    assert details == {"principal_arn": "arn:aws:iam::999999999999:role/tether", "external_id": first}


def test_endpoint_override_is_https_or_loopback() -> None:
    with pytest.raises(ValidationError):
        operator_config("http://169.254.169.254")


# -- against moto --------------------------------------------------------------------------------------------


def test_role_is_assumed_with_the_generated_external_id(endpoint: str) -> None:
    import_findings(endpoint, CUSTOMER_ACCOUNT, [], datetime.now(UTC))
    api = role_client(endpoint, "int_role")
    credential = AwsAssumeRole(role_arn=ROLE_ARN)

    async def scenario() -> Any:
        health = await HealthCheck().run(op_context(api))
        ctx = ConnectionContext("int_role", credential, api, operator_config(endpoint), None)
        return health, await AwsRoleConnection().resolve(ctx)

    health, metadata = run(scenario())
    assert health == {"ok": True, "hub_arn": f"arn:aws:securityhub:us-east-1:{CUSTOMER_ACCOUNT}:hub/default",
                      "region": "us-east-1"}
    assert metadata.account_id == CUSTOMER_ACCOUNT  # acting inside the customer's account, not Tether's
    assert metadata.attributes["external_id"] == external_id_for("int_role", SECRET)
    assumed = [r for r in sts_backends[CUSTOMER_ACCOUNT]["aws"].assumed_roles if r.session_name == "tether-int_role"]
    assert assumed and {r.external_id for r in assumed} == {external_id_for("int_role", SECRET)}
    assert {r.role_arn for r in assumed} == {ROLE_ARN}


def test_finding_sync_through_the_mappings_into_models(endpoint: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    import_findings(endpoint, CUSTOMER_ACCOUNT, ["control", "detection", "inspector", "stale"], now)
    import_findings(endpoint, DEFAULT_ACCOUNT, ["detection"], now)  # another account: must not appear
    ctx = op_context(role_client(endpoint))
    payloads = run(collect(FindingSync().ingest(ctx)))
    assert sorted((p.schema, p.variant) for p in payloads) == [
        ("finding", "control"), ("finding", "detection"), ("vulnerability", "software")]
    assert all(CUSTOMER_ACCOUNT in json.dumps(p.data) for p in payloads)
    assert datetime.fromisoformat(ctx.next_cursor) >= now  # the run's start, saved only on success

    findings = [p for p in payloads if p.schema == "finding"]
    by_variant = {p.variant: model(Finding, r) for p, r in zip(findings, ingest(findings, FindingSync), strict=True)}
    control, detection = by_variant["control"], by_variant["detection"]
    assert control.external_id.endswith("security-control/S3.8/finding/0f2c5c1e-1b7a-4d4a-9c3e-2f6f1c9b8a01")
    assert (control.title, control.severity, control.status) == (
        "S3 general purpose buckets should block public access", "high", "failed")
    assert control.resource_identifier == "arn:aws:s3:::acme-logs"
    assert control.recommendation == "Enable S3 Block Public Access on the bucket."
    assert control.url == "https://docs.aws.amazon.com/console/securityhub/S3.8/remediation"
    assert control.first_seen_at == datetime(2026, 10, 1, 8, tzinfo=UTC)
    assert control.last_seen_at == now
    assert control.attributes["control_id"] == "S3.8"
    assert (detection.severity, detection.status, detection.source) == ("medium", "notified", "security_hub")
    assert detection.category == "TTPs/Discovery/Recon:EC2-PortProbeUnprotectedPort"
    assert detection.url.startswith("https://us-east-1.console.aws.amazon.com/guardduty/")

    [vulnerability] = [p for p in payloads if p.schema == "vulnerability"]
    vuln = model(Vulnerability, ingest([vulnerability], FindingSync)[0])
    assert vuln.external_id.endswith("finding/5e3a2b1c0d9f8e7a6b5c4d3e2f1a0b9c#CVE-2023-44487")
    assert (vuln.cve_id, vuln.severity, vuln.cvss_score, vuln.status) == ("CVE-2023-44487", "critical", 7.5, "new")
    assert (vuln.package_name, vuln.package_version, vuln.fixed_version) == ("nghttp2", "1.43.0", "1.57.0")
    assert vuln.published_at == datetime(2023, 10, 10, 14, 15, tzinfo=UTC)
    assert vuln.url == "https://nvd.nist.gov/vuln/detail/CVE-2023-44487"


def test_finding_sync_pages_with_next_token_and_respects_the_cursor(endpoint: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    hub = hub_client(endpoint, DEFAULT_ACCOUNT)
    hub.enable_security_hub()
    many = []
    for i in range(130):  # more than one page of 100
        finding = asff("detection", DEFAULT_ACCOUNT, now)
        finding["Id"] += f"-{i}"
        many.append(finding)
    for start in range(0, len(many), 100):  # BatchImportFindings takes at most 100
        assert hub.batch_import_findings(Findings=many[start:start + 100])["FailedCount"] == 0
    api = keys_client(endpoint)
    calls: list[dict[str, Any]] = []
    api.securityhub.meta.events.register("provide-client-params.securityhub.GetFindings",
                                         lambda params, **_: calls.append(dict(params)))
    payloads = run(collect(FindingSync().ingest(op_context(api))))
    assert len({p.data["Id"] for p in payloads}) == 130
    assert len(calls) == 2 and "NextToken" not in calls[0] and calls[1]["NextToken"]
    window = calls[0]["Filters"]["UpdatedAt"][0]
    assert window["Start"] < window["End"] and calls[0]["MaxResults"] == 100
    # A cursor after every finding's UpdatedAt (beyond the overlap) leaves nothing to sync.
    later = (now + timedelta(minutes=30)).isoformat()
    assert run(collect(FindingSync().ingest(op_context(api, cursor=later)))) == []


def test_resource_sync_emits_each_resource_once(endpoint: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    import_findings(endpoint, CUSTOMER_ACCOUNT, ["control", "detection", "inspector"], now)
    payloads = run(collect(ResourceSync().ingest(op_context(role_client(endpoint)))))
    assets = {a.source_identifier: a for a in (model(Asset, r) for r in ingest(payloads, ResourceSync))}
    instance = f"arn:aws:ec2:us-east-1:{CUSTOMER_ACCOUNT}:instance/i-0abcd1234ef567890"
    assert set(assets) == {"arn:aws:s3:::acme-logs", instance}  # the instance is named by two findings
    bucket = assets["arn:aws:s3:::acme-logs"]
    assert (bucket.asset_type, bucket.owner, bucket.source_updated_at) == ("AwsS3Bucket", CUSTOMER_ACCOUNT, now)
    assert bucket.attributes == {"partition": "aws", "region": "us-east-1", "tags": {"team": "platform"}}


def test_keys_connection_resolves_the_default_account(endpoint: str) -> None:
    api = keys_client(endpoint)
    credential = AwsAccessKeys(access_key_id="AKIACUSTOMERKEYS001", secret_access_key=SecretStr("x"))
    ctx = ConnectionContext("int_keys", credential, api, operator_config(endpoint), None)
    metadata = run(AwsKeysConnection().resolve(ctx))
    assert metadata.account_id == DEFAULT_ACCOUNT and api.external_id is None
    assert "IAM" in AwsKeysConnection.disconnect.reason


# -- errors: throttling is deferred and retried, refused credentials are unauthorized -----------------------------


def test_throttling_is_rate_limited_then_the_retry_succeeds(endpoint: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    import_findings(endpoint, DEFAULT_ACCOUNT, ["control"], now)
    api = keys_client(endpoint)
    with Stubber(api.securityhub) as stub:
        stub.add_client_error("get_findings", service_error_code="ThrottlingException",
                              service_message="Rate exceeded for account 123456789012", http_status_code=429)
        ctx = op_context(api)
        with pytest.raises(ProviderError) as caught:
            run(collect(FindingSync().ingest(ctx)))
    error = caught.value
    assert (error.code, error.retry_after) == ("rate_limited", DEFAULT_RETRY_AFTER)
    assert "123456789012" not in str(error) and ctx.next_cursor is None  # nothing saved for a failed run
    # The queue defers the run by retry_after and runs it again: the retry reads the findings.
    retry = op_context(api)
    assert [p.variant for p in run(collect(FindingSync().ingest(retry)))] == ["control"]
    assert retry.next_cursor is not None


def test_refused_credentials_are_unauthorized(endpoint: str) -> None:
    api = keys_client(endpoint)
    with Stubber(api.securityhub) as stub:
        stub.add_client_error("describe_hub", service_error_code="UnrecognizedClientException",
                              service_message="The security token included in the request is invalid.",
                              http_status_code=400)
        with pytest.raises(ProviderError) as caught:
            run(HealthCheck().run(op_context(api)))
    assert caught.value.code == "unauthorized" and "security token" not in str(caught.value)


def test_security_hub_not_enabled_is_its_own_error(endpoint: str) -> None:
    with pytest.raises(ProviderError) as caught:
        run(HealthCheck().run(op_context(role_client(endpoint))))
    assert caught.value.code == "not_enabled"


def test_unreachable_endpoint_is_retryable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOOPBACK_ENV, "1")
    api = keys_client(f"http://127.0.0.1:{_free_port()}")
    with pytest.raises(ProviderError) as caught:
        run(HealthCheck().run(op_context(api)))
    assert caught.value.code == "provider_unavailable"


def test_a_trickling_endpoint_is_cut_off_at_the_total_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's own timeouts are per read; its requests go through egress, whose bound is for the whole exchange."""
    monkeypatch.setenv(LOOPBACK_ENV, "1")
    monkeypatch.setattr(transport, "TOTAL_SECONDS", 0.5)
    body = b'{"HubArn": "' + b"x" * TRICKLE_BYTES + b'"}'  # the health check's DescribeHub, GET /accounts
    with trickle_server({"/accounts": SlowAnswer(http_head("200 OK", len(body)), body)}) as server:
        api = keys_client(server.url(""))
        with pytest.raises(TetherError) as caught:
            run(HealthCheck().run(op_context(api)))
        assert server.hung_up["/accounts"].wait(10) and "/accounts" not in server.finished
    error = caught.value
    assert (error.code, error.message) == ("provider_unavailable", "the provider did not answer within 0.5 s")


def test_aws_endpoints_are_checked_like_every_provider_address() -> None:
    """Without the test switch, an endpoint on 127.0.0.1 is refused before anything is sent."""
    api = keys_client("http://127.0.0.1:9")
    with pytest.raises(TetherError) as caught:
        run(HealthCheck().run(op_context(api)))
    assert caught.value.code == "egress_refused"


@pytest.mark.parametrize(
    ("status", "code", "retry_after"),
    [
        (401, "unauthorized", None),
        (403, "unauthorized", None),
        (429, "rate_limited", 9.0),
        (400, "provider_error", None),
    ],
)
def test_an_answer_the_sdk_cannot_read_is_classified_by_its_status(
    status: int, code: str, retry_after: float | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """STS answers XML; a gateway's page in its place (JSON, plain text) makes botocore's parser raise instead of a
    ``ClientError``: the HTTP status says what it was, and the parser's message, which quotes the body, is not kept."""
    from support.replay import Answer, replay_server

    monkeypatch.setenv(LOOPBACK_ENV, "1")
    page = Answer(status, {"message": "gateway says no: secret-page-text"}, {"Retry-After": "9"})
    with replay_server(lambda request: page) as server:
        api = keys_client(server.url)
        with pytest.raises(ProviderError) as caught:
            run(api.account_id())  # sts:GetCallerIdentity, the query (XML) protocol
    error = caught.value
    assert (error.code, error.provider_status) == (code, status)
    assert getattr(error, "retry_after", None) == retry_after
    assert "secret-page-text" not in error.message
