"""Security Command Center against Google's documented token and v1 findings shapes, replayed by respx."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import SecretStr

from definitions.gcp_scc import definition
from definitions.gcp_scc.client import SccApi, SccClient
from definitions.gcp_scc.connections import ServiceAccountKeyConnection
from definitions.gcp_scc.operations import FindingsSync, HealthCheck
from definitions.gcp_scc.slots import GcpServiceAccountKey, GcpWorkloadIdentity
from engine import ClientContext, ConnectionContext, NoConfig, OperationContext, Payload, ProviderError
from engine.catalog.registry import Registry
from engine.errors import ConfigurationError
from ingest.models.finding import Finding
from ingest.models.vulnerability import Vulnerability
from ingest.pipeline import IngestContext, IngestPipeline
from support.cassette_fixtures import response_fixture

API = "https://securitycenter.googleapis.com"
TOKEN_URL = "https://oauth2.googleapis.com/token"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "gcp_scc"
PARENT = "organizations/123456789012"
FINDINGS = f"{API}/v1/{PARENT}/sources/-/findings"
EMAIL = "scc-reader@acme-prod.iam.gserviceaccount.com"


def recorded(name: str) -> dict[str, Any]:
    return response_fixture(FIXTURES, name)


def reply(name: str) -> Callable[[httpx.Request], httpx.Response]:
    rec = recorded(name)
    return lambda request: httpx.Response(rec["status"], headers=rec["headers"], json=rec["body"])


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def collect(items: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in items]


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def credential(rsa_key: rsa.RSAPrivateKey) -> GcpServiceAccountKey:
    pem = rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    key = {"type": "service_account", "project_id": "acme-prod", "private_key_id": "abc123", "private_key": pem,
           "client_email": EMAIL, "client_id": "104857600000000000000", "token_uri": "https://evil.example/token"}
    return GcpServiceAccountKey(service_account_json=SecretStr(json.dumps(key)), parent=PARENT)


def api(credential: GcpServiceAccountKey) -> SccApi:
    return SccClient().build(ClientContext("int_gcp", credential, None, None))


def op_context(client: SccApi) -> OperationContext:
    return OperationContext(integration_id="int_gcp", tenant_id="tenant_1", config=NoConfig(), client=client,
                            operator_config=None, user_input=None)


def sync(credential: GcpServiceAccountKey) -> list[Payload]:
    async def scenario() -> list[Payload]:
        async with api(credential) as client:
            return await collect(FindingsSync().ingest(op_context(client)))

    return run(scenario())


def ingest(payloads: list[Payload]) -> list[Any]:
    registry = Registry()
    registry.register(definition)
    ctx = IngestContext(tenant_id="tenant_1", integration_id="int_gcp", definition_id="gcp_scc",
                        emits=FindingsSync.emits, origin="FindingsSync")
    outcomes = IngestPipeline(registry).dry_run(ctx, payloads)
    assert [o.status for o in outcomes] == ["mapped"] * len(payloads), [o.reason for o in outcomes]
    models = {"finding": Finding, "vulnerability": Vulnerability}
    return [models[o.schema].model_validate({**o.object.model_dump(), "tenant_id": "tenant_1",
                                             "integration_id": "int_gcp", "definition_id": "gcp_scc"})
            for o in outcomes]


def b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_definition_registers() -> None:
    for registry in (Registry(), Registry(allow_loopback=False)):
        registry.register(definition)


def test_jwt_bearer_assertion_is_rs256_to_the_fixed_token_url(credential: GcpServiceAccountKey,
                                                              rsa_key: rsa.RSAPrivateKey) -> None:
    async def scenario() -> Any:
        async with api(credential) as client:
            health = await HealthCheck().run(op_context(client))
            ctx = ConnectionContext("int_gcp", credential, client, None, None)
            return health, await ServiceAccountKeyConnection().resolve(ctx)

    with respx.mock() as router:
        token = router.post(TOKEN_URL).mock(side_effect=reply("token"))  # never the key's own token_uri
        findings = router.get(FINDINGS).mock(side_effect=reply("findings_page2"))
        health, metadata = run(scenario())
    assert health == {"ok": True, "parent": PARENT, "read_time": "2026-11-23T10:00:00.000Z"}
    assert (metadata.account_id, metadata.account_email) == (PARENT, EMAIL)
    assert token.call_count == 1
    form = parse_qs(token.calls.last.request.content.decode())
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    header, claims, signature = form["assertion"][0].split(".")
    assert json.loads(b64decode(header)) == {"alg": "RS256", "typ": "JWT"}
    body = json.loads(b64decode(claims))
    assert (body["iss"], body["aud"], body["scope"]) == (
        EMAIL, TOKEN_URL, "https://www.googleapis.com/auth/cloud-platform")
    assert body["exp"] - body["iat"] == 3600
    rsa_key.public_key().verify(b64decode(signature), f"{header}.{claims}".encode(), padding.PKCS1v15(),
                                hashes.SHA256())
    assert findings.calls.last.request.headers["Authorization"] == "Bearer ya29.c.test-access-token"


def test_findings_sync_pages_and_maps_every_variant(credential: GcpServiceAccountKey) -> None:
    def pages(request: httpx.Request) -> httpx.Response:
        return reply("findings_page2" if request.url.params.get("pageToken") else "findings_page1")(request)

    with respx.mock() as router:
        router.post(TOKEN_URL).mock(side_effect=reply("token"))
        route = router.get(FINDINGS).mock(side_effect=pages)
        payloads = sync(credential)
    assert [c.request.url.params.get("pageToken") for c in route.calls] == [None, "CiAKGjBpNDd2Nmp2Zml2cXRwYjBpOXA"]
    assert route.calls[0].request.url.params["filter"] == 'state="ACTIVE"'
    assert [(p.schema, p.variant) for p in payloads] == [
        ("finding", "threat"), ("finding", "misconfiguration"), ("vulnerability", "cve")]
    threat, misconfiguration, vuln = ingest(payloads)
    assert threat.external_id == f"{PARENT}/sources/2345678901234567890/findings/8a1c7b2e5f9d4c3b"
    assert (threat.title, threat.severity, threat.status, threat.source) == (
        "Execution: Cryptocurrency Mining Combined Detection", "high", "open", "scc")
    assert threat.resource_identifier.endswith("/instances/web-1")
    assert threat.recommendation == "Stop the instance and investigate."
    assert threat.last_seen_at == datetime(2026, 11, 22, 18, 4, 11, 123000, tzinfo=UTC)
    assert threat.attributes["project"] == "acme-prod" and threat.attributes["finding_class"] == "THREAT"
    assert (misconfiguration.category, misconfiguration.severity, misconfiguration.recommendation) == (
        "PUBLIC_BUCKET_ACL", "medium", None)
    assert (vuln.cve_id, vuln.severity, vuln.cvss_score, vuln.status) == ("CVE-2023-4911", "critical", 7.8, "open")
    assert (vuln.package_name, vuln.package_version, vuln.fixed_version) == (
        "glibc", "2.36-9+deb12u1", "2.36-9+deb12u3")
    assert vuln.title == "OS_VULNERABILITY: CVE-2023-4911"
    assert vuln.url == "https://nvd.nist.gov/vuln/detail/CVE-2023-4911"


@pytest.mark.parametrize("name", ["error_401", "error_403"])
def test_401_and_403_are_unauthorized(credential: GcpServiceAccountKey, name: str) -> None:
    with respx.mock() as router:
        router.post(TOKEN_URL).mock(side_effect=reply("token"))
        router.get(FINDINGS).mock(side_effect=reply(name))
        with pytest.raises(ProviderError) as caught:
            sync(credential)
    assert caught.value.code == "unauthorized" and "credentials" not in str(caught.value)


def test_refused_assertion_is_unauthorized(credential: GcpServiceAccountKey) -> None:
    with respx.mock(assert_all_called=False) as router:
        router.post(TOKEN_URL).mock(side_effect=reply("token_error"))
        findings = router.get(FINDINGS)
        with pytest.raises(ProviderError) as caught:
            sync(credential)
    assert caught.value.code == "unauthorized" and "Signature" not in str(caught.value)
    assert findings.call_count == 0


def test_429_is_rate_limited_with_retry_after(credential: GcpServiceAccountKey) -> None:
    with respx.mock() as router:
        router.post(TOKEN_URL).mock(side_effect=reply("token"))
        router.get(FINDINGS).mock(side_effect=reply("error_429"))
        with pytest.raises(ProviderError) as caught:
            sync(credential)
    assert (caught.value.code, caught.value.retry_after) == ("rate_limited", 42.0)
    assert "Quota exceeded" not in str(caught.value)


def test_bad_key_and_workload_identity() -> None:
    bad = GcpServiceAccountKey(service_account_json=SecretStr('{"type": "authorized_user"}'), parent=PARENT)
    with pytest.raises(ConfigurationError):
        SccClient().build(ClientContext("int", bad, None, None))
    wif = GcpWorkloadIdentity(project_number="1029384756", pool_id="tether-pool", provider_id="tether-oidc",
                              service_account_email="not-an-email", parent=PARENT)
    with pytest.raises(ConfigurationError, match="service account email"):  # the flow: test_gcp_scc_wif.py
        SccClient().build(ClientContext("int", wif, None, None, identity_token=lambda audience, ttl: "unused"))
    with pytest.raises(ConfigurationError, match="Tether's identity"):
        SccClient().build(ClientContext("int", wif, None, None))
