"""Recording the AWS Security Hub cassettes (``tests/cassettes/aws_security_hub/``) against a stand-in on 127.0.0.1.

The definition's boto3 clients send through the egress client, so the recording tap sends AWS's regional origins
(``securityhub.us-east-1.amazonaws.com``, ``auditmanager.…``) to one stand-in and the cassettes keep AWS's URLs. The
stand-in checks every request's Signature Version 4 as AWS does (the canonical request rebuilt for the AWS host the
credential scope names, signed with the recording's secret key; a wrong one is answered
``403 InvalidSignatureException``, an unknown key ``403 UnrecognizedClientException``) and answers in AWS's
documented wire shapes: Security Hub's ``DescribeHub`` (its API reference's Response Syntax) and ``GetFindings``
(ASFF from ``tests/fixtures/aws_security_hub/findings.json``, two pages chained by ``NextToken`` in the JSON body),
Audit Manager's ``GetAccountStatus``, ``ListAssessments`` (``nextToken`` pages) and ``GetAssessment`` (from
``audit_manager.json``), and STS's ``AssumeRole`` (the query protocol's XML, the API reference's example) for the
role connection: Tether's own key, the role's ARN and the integration's external ID, or ``403 AccessDenied``.

Security Hub's syncs read a window of ``UpdatedAt`` that ends at the run's start: the findings are recorded as
updated an hour before the recording, with ``lookback_days`` 90 in the cassettes' config, so a replay maps them for
90 days (later the definition filters them out client-side, as it should, and the run still pages to the end).
``AuditEvidenceSync`` is not recorded: it skips evidence folders dated before its window, so a replay a month after
the recording would no longer request the recorded pages; its Stubber tests (``test_aws_audit_manager``) cover it.
"""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from pydantic import SecretStr

from engine.testing.recording import connect, record_to, scratch_engine
from support.cassette_fixtures import response_fixture
from support.replay import Answer, Received, replay_server
from support.standins import FIXTURES, loopback_allowed

REGION = "us-east-1"
ACCOUNT = "111122223333"  # the customer account of the fixtures
ACCESS_KEY_ID = "AKIAR3C0RDEDCUSTOMER1"
SECRET_ACCESS_KEY = "aws/R3c0rdedSecretAccessKeyNotInACassette01"
EXTERNAL_ID_SECRET = "aws-external-id-secret-R3c0rded"
ORIGINS = (
    *(f"https://{service}.{REGION}.amazonaws.com" for service in ("securityhub", "auditmanager", "sts")),
    "https://sts.amazonaws.com",
)
#: The window the Security Hub syncs read (the most the definition allows): the recorded findings stay in it longest.
WINDOW = {"lookback_days": 90}

#: Tether's own AWS identity (operator config), which calls sts:AssumeRole for the role connection.
OPERATOR_KEY_ID = "AKIAR3C0RDEDTETHEROP1"
OPERATOR_SECRET = "aws/R3c0rdedOperatorSecretKeyNotInACassette"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/TetherSecurityHubRead"
#: The temporary credentials the stand-in's STS issues for the role (scrubbed from the cassette's XML answer).
TEMP_KEY_ID = "ASIAR3C0RDEDTEMPKEY01"
TEMP_SECRET = "aws/R3c0rdedTemporarySecretNotInACassette"
TEMP_TOKEN = "IQoJb3JpZ2luX2VjR3c0rdedSessionTokenNotInACassette=="

SECRETS = (
    SECRET_ACCESS_KEY,
    EXTERNAL_ID_SECRET,
    OPERATOR_SECRET,
    TEMP_SECRET,
    TEMP_TOKEN,
    "secret_R3c0rdedN0tionAccessT0kenNotInACassette",
    "secret_R3c0rdedN0tionClient",
)

Recorder = Callable[[Path, Path], Awaitable[list[Path]]]


# -- Signature Version 4, checked as AWS checks it ----------------------------------------------------------------


def _aws_error(status: int, code: str, message: str) -> Answer:
    """A rest-json error as AWS sends it: the code in ``x-amzn-ErrorType``, the message in the body."""
    return Answer(status, {"message": message}, {"x-amzn-ErrorType": code, "Content-Type": "application/json"})


def signed_service(request: Received, keys: dict[str, str]) -> str | Answer:
    """The service the request was signed for, or AWS's refusal when its SigV4 signature does not hold."""
    auth = request.headers.get("authorization", "")
    scheme, _, rest = auth.partition(" ")
    fields = dict(part.strip().split("=", 1) for part in rest.split(",") if "=" in part)
    if scheme != "AWS4-HMAC-SHA256" or not {"Credential", "SignedHeaders", "Signature"} <= set(fields):
        return _aws_error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    key_id, _date, region, service, _terminator = fields["Credential"].split("/")
    secret = keys.get(key_id)
    if secret is None:
        return _aws_error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
    signed = fields["SignedHeaders"].split(";")
    host = f"{service}.{region}.amazonaws.com"  # the host the client signed; the tap sent it here instead
    query = urlencode([(k, v) for k, values in request.query.items() for v in values], quote_via=quote, safe="-_.~")
    url = f"https://{host}{request.path}" + (f"?{query}" if query else "")
    headers = {name: request.headers[name] for name in signed if name != "host" and name in request.headers}
    rebuilt = AWSRequest(method=request.method, url=url, headers=headers, data=request.body)
    rebuilt.context["timestamp"] = request.headers.get("x-amz-date", "")
    signer = SigV4Auth(Credentials(key_id, secret), service, region)
    canonical = signer.canonical_request(rebuilt)
    expected = signer.signature(signer.string_to_sign(rebuilt, canonical), rebuilt)
    if signer.signed_headers(signer.headers_to_sign(rebuilt)) != fields["SignedHeaders"] or not hmac.compare_digest(
        expected, fields["Signature"]
    ):
        return _aws_error(
            403,
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided.",
        )
    return service


def _sts_error(status: int, code: str, message: str) -> Answer:
    """A query-protocol error as STS sends it (XML ``ErrorResponse``)."""
    body = (
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
        f"<Code>{code}</Code><Message>{message}</Message></Error>"
        "<RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ErrorResponse>"
    )
    return Answer(status, body, {"Content-Type": "text/xml"})


# -- the documented answers ----------------------------------------------------------------------------------------


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def asff(name: str, updated: datetime) -> dict[str, Any]:
    """A finding of ``findings.json`` (AWS Security Finding Format) in the customer's account."""
    text = json.dumps(json.loads((FIXTURES / "aws_security_hub" / "findings.json").read_text())[name])
    values = {"{account}": ACCOUNT, "{updated}": _stamp(updated), "{old}": _stamp(updated - timedelta(days=60))}
    for key, value in values.items():
        text = text.replace(key, value)
    return dict(json.loads(text))


def audit(name: str, now: datetime) -> dict[str, Any]:
    """An Audit Manager body of ``audit_manager.json``, its relative times filled (rest-json: epoch seconds)."""
    times = {
        "@recent": now - timedelta(hours=1),
        "@yesterday": now - timedelta(days=1),
        "@old": now - timedelta(days=60),
        "@created": now - timedelta(days=45),
    }

    def fill(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: fill(item) for key, item in value.items()}
        if isinstance(value, list):
            return [fill(item) for item in value]
        if value in times:
            return times[value].timestamp()
        if value in ("@folder_today", "@folder_old"):
            return times["@recent" if value == "@folder_today" else "@old"].date().isoformat()
        return value

    return dict(fill(json.loads((FIXTURES / "aws_security_hub" / "audit_manager.json").read_text())[name]))


#: GetFindings' pages: the first names its successor in ``NextToken`` (the request echoes it in its JSON body).
FINDING_PAGES = (("control", "detection"), ("inspector", "stale"))
NEXT_TOKEN = "U2VjdXJpdHlIdWJGaW5kaW5nc1BhZ2Uy"
SOC2, CIS = "3f9b2c1a-7d4e-4a8b-9c2d-1e0f5a6b7c8d", "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"


class AwsStandIn:
    """Security Hub and Audit Manager for one account, as the keys of ``keys`` (access key ID → secret) sign."""

    def __init__(self, keys: dict[str, str]) -> None:
        self.keys = keys
        self.now = datetime.now(UTC).replace(microsecond=0)
        #: The external ID the role's trust policy names (set once the integration, whose ID it derives from, exists).
        self.external_id = ""

    def __call__(self, request: Received) -> Answer:
        service = signed_service(request, self.keys)
        if isinstance(service, Answer):
            return service
        if service == "sts":
            return self.sts(request)
        if service == "securityhub":
            return self.security_hub(request)
        if service == "auditmanager":
            return self.audit_manager(request)
        return _aws_error(400, "UnknownOperationException", "Unknown operation")

    def sts(self, request: Received) -> Answer:
        """``AssumeRole`` (query protocol, XML): the role trusts Tether's key only with the integration's external
        ID; the answer is the STS API reference's example with this role and far-off temporary credentials."""
        form = {k: v[0] for k, v in request.form().items()}
        if form.get("Action") != "AssumeRole":
            return _sts_error(400, "InvalidAction", "Could not find operation")
        trusted = request.headers.get("authorization", "").find(f"Credential={OPERATOR_KEY_ID}/") >= 0
        if not trusted or form.get("RoleArn") != ROLE_ARN or form.get("ExternalId") != self.external_id:
            return _sts_error(403, "AccessDenied", "User is not authorized to perform: sts:AssumeRole")
        self.keys[TEMP_KEY_ID] = TEMP_SECRET
        session = form.get("RoleSessionName", "")
        body = f"""<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::{ACCOUNT}:assumed-role/TetherSecurityHubRead/{session}</Arn>
      <AssumedRoleId>AROA3XFRBF535PLBIFPI4:{session}</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>{TEMP_KEY_ID}</AccessKeyId>
      <SecretAccessKey>{TEMP_SECRET}</SecretAccessKey>
      <SessionToken>{TEMP_TOKEN}</SessionToken>
      <Expiration>2099-01-01T00:00:00Z</Expiration>
    </Credentials>
    <PackedPolicySize>6</PackedPolicySize>
  </AssumeRoleResult>
  <ResponseMetadata>
    <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>
  </ResponseMetadata>
</AssumeRoleResponse>"""
        return Answer(200, body, {"Content-Type": "text/xml"})

    def security_hub(self, request: Received) -> Answer:
        if request.method == "GET" and request.path == "/accounts":  # DescribeHub
            return Answer(
                200,
                {
                    "HubArn": f"arn:aws:securityhub:{REGION}:{ACCOUNT}:hub/default",
                    "SubscribedAt": "2026-10-01T08:00:00.000Z",
                    "AutoEnableControls": True,
                    "ControlFindingGenerator": "SECURITY_CONTROL",
                },
            )
        if request.method == "POST" and request.path == "/findings":  # GetFindings
            asked = json.loads(request.body or b"{}")
            second = asked.get("NextToken") == NEXT_TOKEN
            names = FINDING_PAGES[1] if second else FINDING_PAGES[0]
            page: dict[str, Any] = {"Findings": [asff(n, self.now - timedelta(hours=1)) for n in names]}
            if not second:
                page["NextToken"] = NEXT_TOKEN
            return Answer(200, page)
        return _aws_error(404, "ResourceNotFoundException", "Not found")

    def audit_manager(self, request: Received) -> Answer:
        if request.path == "/account/status":
            return Answer(200, audit("account_status", self.now))
        if request.path == "/assessments":
            token = request.query.get("nextToken", [""])[0]
            first = audit("list_assessments_page_1", self.now)
            second = token and token == first.get("nextToken")
            return Answer(200, audit("list_assessments_page_2", self.now) if second else first)
        names = {f"/assessments/{SOC2}": "get_assessment_soc2", f"/assessments/{CIS}": "get_assessment_cis"}
        if request.path in names:
            return Answer(200, audit(names[request.path], self.now))
        return _aws_error(404, "ResourceNotFoundException", "The resource was not found.")


async def record_aws(out: Path, workdir: Path) -> list[Path]:
    from definitions.aws_security_hub import definition
    from definitions.aws_security_hub.connections import AwsKeysConnection, AwsRoleConnection
    from definitions.aws_security_hub.external_id import external_id_for
    from definitions.aws_security_hub.slots import AwsAccessKeys, AwsAssumeRole

    operator = {
        "external_id_secret": EXTERNAL_ID_SECRET,
        "access_key_id": OPERATOR_KEY_ID,
        "secret_access_key": OPERATOR_SECRET,
        "principal_arn": "arn:aws:iam::999999999999:role/tether",
    }
    runtime = scratch_engine(definition, workdir, operator)
    try:
        credential = AwsAccessKeys(
            access_key_id=ACCESS_KEY_ID, secret_access_key=SecretStr(SECRET_ACCESS_KEY), region=REGION
        )
        iid = connect(runtime, definition, AwsKeysConnection, credential)
        standin = AwsStandIn({ACCESS_KEY_ID: SECRET_ACCESS_KEY, OPERATOR_KEY_ID: OPERATOR_SECRET})
        with loopback_allowed(), replay_server(standin) as server:
            upstreams = dict.fromkeys(ORIGINS, server.url)
            paths = [await record_to(runtime, iid, "HealthCheck", out / "HealthCheck.yaml", upstreams=upstreams)]
            for op in ("FindingSync", "ResourceSync"):
                paths.append(await record_to(runtime, iid, op, out / f"{op}.yaml", config=WINDOW, upstreams=upstreams))
            target = out / "AuditAssessmentSync.yaml"
            paths.append(await record_to(runtime, iid, "AuditAssessmentSync", target, upstreams=upstreams))
            # The role connection (the recommended one): Tether's key assumes the role with the external ID.
            role = connect(
                runtime, definition, AwsRoleConnection, AwsAssumeRole(role_arn=ROLE_ARN, region=REGION), owner_id="role"
            )
            standin.external_id = external_id_for(role, EXTERNAL_ID_SECRET)
            for op in ("HealthCheck", "FindingSync"):
                target = out / f"AwsRoleConnection.{op}.yaml"
                config = WINDOW if op == "FindingSync" else None
                paths.append(await record_to(runtime, role, op, target, config=config, upstreams=upstreams))
            return paths
    finally:
        runtime.close()


# -- Notion (``custom_oauth2``'s shipped data definition) -----------------------------------------------------------

NOTION = "https://api.notion.com"
NOTION_TOKEN = "secret_R3c0rdedN0tionAccessT0kenNotInACassette"
NOTION_CONFIG = {"client_id": "1e4d872b-594c-80a7-9c5e-0037a1b2c3d4", "client_secret": "secret_R3c0rdedN0tionClient"}


def notion_fixture(folder: str, name: str) -> Answer:
    recorded = response_fixture(FIXTURES / folder, name)
    return Answer(recorded["status"], recorded["body"], recorded.get("headers") or {})


def notion_standin(request: Received) -> Answer:
    """Notion with the bearer token and ``Notion-Version``: ``/v1/users/me`` (the bot user), ``POST /v1/search``
    (two pages: ``start_cursor`` in the JSON body, ``next_cursor`` / ``has_more`` in the answer) and the token
    revocation (``POST /v1/oauth/revoke``, the integration's client ID and secret in Basic auth, ``200 {}``)."""
    if request.path == "/v1/oauth/revoke" and request.method == "POST":
        basic = base64.b64encode(f"{NOTION_CONFIG['client_id']}:{NOTION_CONFIG['client_secret']}".encode()).decode()
        sent = request.form() if b"=" in request.body and not request.body.startswith(b"{") else {}
        token = sent.get("token", [""])[0] if sent else json.loads(request.body or b"{}").get("token")
        form_client = sent.get("client_secret", [""])[0] == NOTION_CONFIG["client_secret"] if sent else False
        if request.headers.get("authorization") != f"Basic {basic}" and not form_client:
            return notion_fixture("notion", "error_401")
        return Answer(200, {} if token == NOTION_TOKEN else {"error": "invalid_grant"})
    if request.headers.get("authorization") != f"Bearer {NOTION_TOKEN}":
        return notion_fixture("notion", "error_401")
    if request.headers.get("notion-version") != "2022-06-28":
        return Answer(400, {"object": "error", "status": 400, "code": "missing_version", "message": "Notion-Version"})
    if request.method == "GET" and request.path == "/v1/users/me":
        return notion_fixture("notion", "users_me")
    if request.method == "POST" and request.path == "/v1/search":
        first = notion_fixture("streams", "notion_search_page1")
        cursor = json.loads(request.body or b"{}").get("start_cursor")
        return notion_fixture("streams", "notion_search_page2") if cursor == first.body["next_cursor"] else first
    return Answer(404, {"object": "error", "status": 404, "code": "object_not_found", "message": "Not found"})


async def record_notion(out: Path, workdir: Path) -> list[Path]:
    from definitions.custom_oauth2 import notion as definition

    runtime = scratch_engine(definition, workdir, NOTION_CONFIG)
    try:
        (connection,) = definition.connections
        slot = connection.credential
        iid = connect(
            runtime, definition, connection, slot(access_token=SecretStr(NOTION_TOKEN), scopes=("read:pages",))
        )
        with loopback_allowed(), replay_server(notion_standin) as server:
            upstreams = {NOTION: server.url}
            paths = [
                await record_to(runtime, iid, op, out / f"{op}.yaml", upstreams=upstreams)
                for op in ("NotionHealthCheck", "PageSync")
            ]
            target = out / f"disconnect.{connection.__name__}.yaml"
            paths.append(await record_to(runtime, iid, "disconnect", target, upstreams=upstreams))
            return paths
    finally:
        runtime.close()


RECORDERS: dict[str, Recorder] = {"aws_security_hub": record_aws, "notion": record_notion}
