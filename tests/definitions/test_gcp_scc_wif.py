"""Security Command Center by workload identity federation: Tether's OIDC token, Google STS and impersonation.

STS and iamcredentials answers are replayed by respx in Google's documented shapes; the subject token sent to STS
is verified against the JWKS the ``engine.custody.oidc`` router serves.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from fastapi import FastAPI

from definitions.gcp_scc import definition
from definitions.gcp_scc.client import SccApi, SccClient, parse_expire_time
from definitions.gcp_scc.connections import WorkloadIdentityConnection
from definitions.gcp_scc.operations import FindingsSync, HealthCheck
from definitions.gcp_scc.slots import GcpWorkloadIdentity
from engine import ClientContext, ConnectionContext, NoConfig, OperationContext, Payload, ProviderError
from engine.catalog.registry import Registry
from engine.custody import oidc
from engine.custody.crypto import KeyRing, generate_master_key
from engine.custody.masterkey import KeySource
from engine.settings import Settings
from ingest.models.finding import Finding
from ingest.models.vulnerability import Vulnerability
from ingest.pipeline import IngestContext, IngestPipeline
from support.cassette_fixtures import response_fixture

API = "https://securitycenter.googleapis.com"
STS_URL = "https://sts.googleapis.com/v1/token"
EMAIL = "scc-reader@acme-prod.iam.gserviceaccount.com"
IAM_URL = f"https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{EMAIL}:generateAccessToken"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "gcp_scc"
PARENT = "organizations/123456789012"
FINDINGS = f"{API}/v1/{PARENT}/sources/-/findings"
PUBLIC_URL = "https://tether.acme.example"
AUDIENCE = ("//iam.googleapis.com/projects/1029384756/locations/global/workloadIdentityPools/tether-pool/"
            "providers/tether-oidc")
SUBJECT = "tether:tenant_1:int_gcp"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"

#: POST https://sts.googleapis.com/v1/token (https://cloud.google.com/iam/docs/reference/sts/rest/v1/TopLevel/token)
STS_ANSWER = {"access_token": "ya29.d.federated-token", "issued_token_type":
              "urn:ietf:params:oauth:token-type:access_token", "token_type": "Bearer", "expires_in": 3599}
STS_ERROR = {"error": "invalid_grant", "error_description": "The audience in ID Token [https://x] does not match "
             "the expected audience //iam.googleapis.com/projects/1029384756/locations/global/..."}


def iam_answer(request: httpx.Request) -> httpx.Response:
    """generateAccessToken (https://cloud.google.com/iam/docs/reference/credentials/rest/v1/projects.serviceAccounts/
    generateAccessToken): ``{"accessToken", "expireTime"}``, RFC 3339 with a ``Z``."""
    expire = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return httpx.Response(200, json={"accessToken": "ya29.c.impersonated-token", "expireTime": expire})


def recorded(name: str) -> dict[str, Any]:
    return response_fixture(FIXTURES, name)


def reply(name: str) -> Callable[[httpx.Request], httpx.Response]:
    rec = recorded(name)
    return lambda request: httpx.Response(rec["status"], headers=rec["headers"], json=rec["body"])


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@dataclass(frozen=True)
class ProcessIdentity:
    """What ``engine.custody.oidc`` signs with: a runtime's settings (the issuer) and its key source."""

    settings: Settings
    keys: KeySource


@pytest.fixture
def identity() -> ProcessIdentity:
    return ProcessIdentity(Settings(public_url=PUBLIC_URL + "/"),
                           KeySource(KeyRing.from_master_key(generate_master_key()), "env"))


def credential(email: str | None = EMAIL) -> GcpWorkloadIdentity:
    return GcpWorkloadIdentity(project_number="1029384756", pool_id="tether-pool", provider_id="tether-oidc",
                               service_account_email=email, parent=PARENT)


def api(cred: GcpWorkloadIdentity, identity: ProcessIdentity) -> SccApi:
    """The client as the engine builds it: with Tether's identity for integration ``int_gcp`` of ``tenant_1``."""
    tokens = oidc.identity_tokens(identity, "tenant_1", "int_gcp")
    return SccClient().build(ClientContext("int_gcp", cred, None, None, tenant_id="tenant_1", identity_token=tokens))


def op_context(client: SccApi) -> OperationContext:
    return OperationContext(integration_id="int_gcp", tenant_id="tenant_1", config=NoConfig(), client=client,
                            operator_config=None, user_input=None)


def served(ident: ProcessIdentity, path: str) -> dict[str, Any]:
    """``path`` of an app holding only the OIDC router, through ASGI."""
    app = FastAPI()
    app.state.runtime = ident
    app.include_router(oidc.router)

    async def fetch() -> dict[str, Any]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tether") as client:
            response = await client.get(path)
            assert response.status_code == 200
            return response.json()

    return run(fetch())


def verify(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    """Check the ES256 signature with the JWK named by ``kid``; the claims."""
    header_part, claims_part, signature_part = token.split(".")
    header = json.loads(b64decode(header_part))
    assert (header["alg"], header["typ"]) == ("ES256", "JWT")
    jwk = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("EC", "P-256", "ES256", "sig")
    public = ec.EllipticCurvePublicNumbers(int.from_bytes(b64decode(jwk["x"]), "big"),
                                           int.from_bytes(b64decode(jwk["y"]), "big"), ec.SECP256R1()).public_key()
    raw = b64decode(signature_part)
    assert len(raw) == 64
    signature = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public.verify(signature, f"{header_part}.{claims_part}".encode(), ec.ECDSA(hashes.SHA256()))
    return json.loads(b64decode(claims_part))


def test_discovery_document_and_deterministic_keys(identity: ProcessIdentity) -> None:
    discovery = served(identity, "/.well-known/openid-configuration")
    assert discovery["issuer"] == PUBLIC_URL
    assert discovery["jwks_uri"] == f"{PUBLIC_URL}/v1/oidc/jwks"
    assert discovery["id_token_signing_alg_values_supported"] == ["ES256"]
    assert discovery["response_types_supported"] and discovery["subject_types_supported"]
    jwks = served(identity, "/v1/oidc/jwks")
    assert len(jwks["keys"]) == 1 and "d" not in jwks["keys"][0]
    # Another process with the same master key derives the same key; another master key does not.
    assert oidc.jwks(identity) == jwks
    other = ProcessIdentity(identity.settings, KeySource(KeyRing.from_master_key(generate_master_key()), "env"))
    assert oidc.jwks(other)["keys"][0]["kid"] != jwks["keys"][0]["kid"]


def test_jwks_keeps_retired_master_keys_during_rotation() -> None:
    old, new = generate_master_key(), generate_master_key()
    before = ProcessIdentity(Settings(public_url=PUBLIC_URL), KeySource(KeyRing.from_master_key(old), "env"))
    during = ProcessIdentity(Settings(public_url=PUBLIC_URL), KeySource(KeyRing.from_master_key(f"{new},{old}"), "env"))
    token = oidc.issue_token(before, subject="s", audience="a")
    assert len(oidc.jwks(during)["keys"]) == 2
    assert verify(token, oidc.jwks(during))["sub"] == "s"
    assert verify(oidc.issue_token(during, subject="s", audience="a"), oidc.jwks(during))["sub"] == "s"


def test_subject_token_exchange_and_impersonation(identity: ProcessIdentity) -> None:
    async def scenario() -> Any:
        async with api(credential(), identity) as client:
            first = await HealthCheck().run(op_context(client))
            await HealthCheck().run(op_context(client))  # the cached token: no second exchange
            ctx = ConnectionContext("int_gcp", credential(), client, None, None)
            return first, await WorkloadIdentityConnection().resolve(ctx)

    with respx.mock() as router:
        sts = router.post(STS_URL).mock(return_value=httpx.Response(200, json=STS_ANSWER))
        iam = router.post(IAM_URL).mock(side_effect=iam_answer)
        findings = router.get(FINDINGS).mock(side_effect=reply("findings_page2"))
        health, metadata = run(scenario())
    assert health == {"ok": True, "parent": PARENT, "read_time": "2026-11-23T10:00:00.000Z"}
    assert (metadata.account_id, metadata.account_email) == (PARENT, EMAIL)
    assert (sts.call_count, iam.call_count, findings.call_count) == (1, 1, 2)

    form = parse_qs(sts.calls.last.request.content.decode())
    assert {k: v[0] for k, v in form.items() if k != "subject_token"} == {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "audience": AUDIENCE,
        "scope": SCOPE,
        "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
    }
    claims = verify(form["subject_token"][0], served(identity, "/v1/oidc/jwks"))
    assert (claims["iss"], claims["aud"], claims["sub"]) == (PUBLIC_URL, AUDIENCE, SUBJECT)
    assert claims["exp"] - claims["iat"] == 300 and claims["exp"] > time.time()

    impersonation = iam.calls.last.request
    assert impersonation.headers["Authorization"] == "Bearer ya29.d.federated-token"
    assert json.loads(impersonation.content) == {"scope": [SCOPE]}
    assert findings.calls.last.request.headers["Authorization"] == "Bearer ya29.c.impersonated-token"


def test_federated_token_without_impersonation_is_reminted_before_expiry(identity: ProcessIdentity) -> None:
    now = [1_000_000.0]

    async def scenario() -> None:
        async with api(credential(None), identity) as client:
            client.http.auth.clock = lambda: now[0]  # type: ignore[union-attr]
            await HealthCheck().run(op_context(client))
            now[0] += 3599 - 5 * 60 - 1  # still fresh
            await HealthCheck().run(op_context(client))
            now[0] += 2  # within five minutes of expiry: a new exchange
            await HealthCheck().run(op_context(client))

    with respx.mock() as router:
        sts = router.post(STS_URL).mock(return_value=httpx.Response(200, json=STS_ANSWER))
        findings = router.get(FINDINGS).mock(side_effect=reply("findings_page2"))
        run(scenario())
    assert sts.call_count == 2
    assert findings.calls.last.request.headers["Authorization"] == "Bearer ya29.d.federated-token"


def test_sts_invalid_grant_is_unauthorized_without_the_body(identity: ProcessIdentity) -> None:
    async def scenario() -> None:
        async with api(credential(), identity) as client:
            await HealthCheck().run(op_context(client))

    with respx.mock(assert_all_called=False) as router:
        router.post(STS_URL).mock(return_value=httpx.Response(400, json=STS_ERROR))
        iam = router.post(IAM_URL)
        findings = router.get(FINDINGS)
        with pytest.raises(ProviderError) as caught:
            run(scenario())
    assert (caught.value.code, caught.value.provider_status) == ("unauthorized", 400)
    assert "invalid_grant" not in str(caught.value) and "audience" not in str(caught.value)
    assert iam.call_count == 0 and findings.call_count == 0


def test_impersonation_refused_is_unauthorized(identity: ProcessIdentity) -> None:
    async def scenario() -> None:
        async with api(credential(), identity) as client:
            await HealthCheck().run(op_context(client))

    denied = {"error": {"code": 403, "message": "Permission 'iam.serviceAccounts.getAccessToken' denied on "
                        "resource (or it may not exist).", "status": "PERMISSION_DENIED"}}
    with respx.mock(assert_all_called=False) as router:
        router.post(STS_URL).mock(return_value=httpx.Response(200, json=STS_ANSWER))
        router.post(IAM_URL).mock(return_value=httpx.Response(403, json=denied))
        router.get(FINDINGS)
        with pytest.raises(ProviderError) as caught:
            run(scenario())
    assert caught.value.code == "unauthorized" and "PERMISSION_DENIED" in str(caught.value)
    assert "getAccessToken" not in str(caught.value)


def test_findings_sync_end_to_end(identity: ProcessIdentity) -> None:
    def pages(request: httpx.Request) -> httpx.Response:
        return reply("findings_page2" if request.url.params.get("pageToken") else "findings_page1")(request)

    async def collect(items: AsyncIterator[Payload]) -> list[Payload]:
        return [item async for item in items]

    async def scenario() -> list[Payload]:
        async with api(credential(), identity) as client:
            return await collect(FindingsSync().ingest(op_context(client)))

    with respx.mock() as router:
        sts = router.post(STS_URL).mock(return_value=httpx.Response(200, json=STS_ANSWER))
        router.post(IAM_URL).mock(side_effect=iam_answer)
        route = router.get(FINDINGS).mock(side_effect=pages)
        payloads = run(scenario())
    assert sts.call_count == 1 and route.call_count == 2
    assert all(c.request.headers["Authorization"] == "Bearer ya29.c.impersonated-token" for c in route.calls)

    registry = Registry()
    registry.register(definition)
    ctx = IngestContext(tenant_id="tenant_1", integration_id="int_gcp", definition_id="gcp_scc",
                        emits=FindingsSync.emits, origin="FindingsSync")
    outcomes = IngestPipeline(registry).dry_run(ctx, payloads)
    assert [o.status for o in outcomes] == ["mapped"] * 3, [o.reason for o in outcomes]
    models = {"finding": Finding, "vulnerability": Vulnerability}
    threat, misconfiguration, vuln = [
        models[o.schema].model_validate({**o.object.model_dump(), "tenant_id": "tenant_1",
                                         "integration_id": "int_gcp", "definition_id": "gcp_scc"})
        for o in outcomes]
    assert (threat.severity, threat.status) == ("high", "open")
    assert misconfiguration.category == "PUBLIC_BUCKET_ACL"
    assert (vuln.cve_id, vuln.severity) == ("CVE-2023-4911", "critical")


def test_expire_time_parsing() -> None:
    assert parse_expire_time("2026-11-23T14:00:00Z") == datetime(2026, 11, 23, 14, tzinfo=UTC).timestamp()
    assert parse_expire_time("2026-11-23T14:00:00.123456789Z") == pytest.approx(
        datetime(2026, 11, 23, 14, tzinfo=UTC).timestamp() + 0.123456789)
    with pytest.raises(ValueError):
        parse_expire_time("tomorrow")
