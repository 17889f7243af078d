"""The methods a provider uses, over HTTP: Okta's documented one-time ``GET`` verification and its deliveries (the
real definition), and a definition's own verifier over the raw body with a ``HEAD`` probe (a "raw DIY" webhook whose
handler reads the bytes as they came). Bad input is a 4xx with a stable code, never a 5xx.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from definitions.okta import definition as okta
from engine import (
    Definition,
    EndpointSecret,
    EventContext,
    Header,
    InvalidSignature,
    Payload,
    Verifier,
    Webhook,
    WebhookEvent,
)
from engine.catalog.registry import Registry
from engine.errors import DefinitionError
from engine.store.database import Database
from engine.store.tables import DeliveryStatus
from support.embedded import EmbeddedWorker
from support.webhook_kit import ConnectedEndpoint, connected_endpoint

OKTA = Path(__file__).parents[1] / "fixtures" / "okta"
VERIFICATION = json.loads((OKTA / "verification_request.json").read_text())
DELIVERY = json.loads((OKTA / "event_hook_delivery.json").read_text())["body"]

# -- a definition's own scheme: HMAC-SHA1 in hex of the raw body, as some older providers sign ----------------

RAW_SEEN: list[bytes] = []


@dataclass(frozen=True, kw_only=True)
class Sha1Body(Verifier):
    """``X-Raw-Signature: <hex HMAC-SHA1 of the body>``: a scheme the engine does not ship."""

    def verify(self, body: bytes, headers: Mapping[str, str], secrets: str | Sequence[str], *, now: float) -> None:
        given = headers.get("x-raw-signature", "").encode("latin-1", "replace")
        keys = [secrets] if isinstance(secrets, str) else list(secrets)
        matched = False
        for key in keys:
            matched |= hmac.compare_digest(given, hmac.new(key.encode(), body, hashlib.sha1).hexdigest().encode())
        if not matched:
            raise InvalidSignature("X-Raw-Signature does not match the body")


class RawEvent(WebhookEvent):
    match = "raw"

    async def handle(self, ctx: EventContext) -> AsyncIterator[Payload]:
        RAW_SEEN.append(ctx.body)
        return
        yield


class RawWebhook(Webhook):
    name = "raw"
    verifier = Sha1Body(secret=EndpointSecret())
    event_type = Header("X-Raw-Kind")
    events = (RawEvent,)
    methods = frozenset({"POST", "HEAD"})


raw_definition = Definition(id="rawhooks", name="Raw", description="A raw DIY webhook (tests only).",
                            webhooks=(RawWebhook,))


@pytest.fixture
async def okta_hook(
    database: Database, monkeypatch: pytest.MonkeyPatch, embedded: EmbeddedWorker
) -> AsyncIterator[ConnectedEndpoint]:
    async for found in connected_endpoint(database, monkeypatch, embedded, okta):
        yield found


@pytest.fixture
async def raw_hook(
    database: Database, monkeypatch: pytest.MonkeyPatch, embedded: EmbeddedWorker
) -> AsyncIterator[ConnectedEndpoint]:
    RAW_SEEN.clear()
    async for found in connected_endpoint(database, monkeypatch, embedded, raw_definition):
        yield found


def documented_headers(authorization: str) -> dict[str, str]:
    return {**VERIFICATION["headers"], "Authorization": authorization}


# -- Okta ------------------------------------------------------------------------------------------------------


async def test_oktas_documented_verification_get_is_answered(okta_hook: ConnectedEndpoint) -> None:
    response = await okta_hook.client.get(okta_hook.url, headers=documented_headers(okta_hook.secret))
    expected = VERIFICATION["response"]
    assert (response.status_code, response.json()) == (expected["status"], expected["body"])
    assert response.headers["content-type"].startswith("application/json")
    assert okta_hook.deliveries() == []  # a handshake is answered, never recorded


@pytest.mark.parametrize("authorization", ["my-shared-secret", "", "Bearer nope", "caf\u00e9"])
async def test_a_verification_get_without_the_secret_is_refused(
    okta_hook: ConnectedEndpoint, authorization: str
) -> None:
    headers = documented_headers(authorization)
    if not authorization:
        del headers["Authorization"]
    response = await okta_hook.client.get(okta_hook.url, headers={k: v.encode("latin-1") for k, v in headers.items()})
    assert (response.status_code, response.json()["error"]["code"]) == (401, "invalid_signature")
    assert VERIFICATION["headers"]["X-Okta-Verification-Challenge"] not in response.text


async def test_a_get_that_is_no_verification_and_other_methods_are_405(okta_hook: ConnectedEndpoint) -> None:
    plain_get = await okta_hook.client.get(okta_hook.url, headers={"Authorization": okta_hook.secret})
    head = await okta_hook.client.head(okta_hook.url)
    put = await okta_hook.client.put(okta_hook.url, content=b"{}")
    assert (plain_get.status_code, plain_get.json()["error"]["code"]) == (405, "method_not_allowed")
    assert head.status_code == 405  # Okta's hook does not declare HEAD
    assert put.status_code == 405
    assert okta_hook.deliveries() == []


async def test_an_okta_delivery_with_the_shared_secret_dispatches_the_sync(okta_hook: ConnectedEndpoint) -> None:
    body = json.dumps(DELIVERY).encode()
    response = await okta_hook.client.post(okta_hook.url, content=body, headers={
        "Authorization": okta_hook.secret, "Content-Type": "application/json"})
    assert response.status_code == 202, response.text
    await okta_hook.worker.drain()
    [row] = okta_hook.deliveries()
    assert (row.status, row.delivery_id) == (DeliveryStatus.processed, DELIVERY["eventId"])
    assert "authorization" not in row.headers  # the secret is never stored
    assert okta_hook.dispatched == ["DirectorySync"]


async def test_an_unknown_token_answers_404_for_every_method(okta_hook: ConnectedEndpoint) -> None:
    for method in ("GET", "HEAD", "POST"):
        response = await okta_hook.client.request(method, "/v1/webhooks/" + "x" * 43)
        assert response.status_code == 404


# -- a definition's own verifier, HEAD probes, raw bodies ------------------------------------------------------


def raw_signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


async def test_a_definitions_own_verifier_and_the_handler_get_the_raw_body(raw_hook: ConnectedEndpoint) -> None:
    body = b"<event kind='raw'>\x00\xff not JSON</event>"
    response = await raw_hook.client.post(raw_hook.url, content=body, headers={
        "X-Raw-Signature": raw_signature(raw_hook.secret, body), "X-Raw-Kind": "raw",
        "Content-Type": "application/xml"})
    assert response.status_code == 202, response.text
    await raw_hook.worker.drain()
    [row] = raw_hook.deliveries()
    assert row.status == DeliveryStatus.processed
    assert [body] == RAW_SEEN


async def test_a_wrong_signature_of_the_own_verifier_is_401(raw_hook: ConnectedEndpoint) -> None:
    body = b"<event/>"
    response = await raw_hook.client.post(raw_hook.url, content=body, headers={"X-Raw-Signature": "00" * 20})
    assert (response.status_code, response.json()["error"]["code"]) == (401, "invalid_signature")
    assert raw_hook.deliveries() == []


async def test_a_head_probe_is_answered_without_verifying_or_recording(raw_hook: ConnectedEndpoint) -> None:
    response = await raw_hook.client.head(raw_hook.url)
    assert (response.status_code, response.content) == (200, b"")
    get = await raw_hook.client.get(raw_hook.url)
    assert (get.status_code, get.json()["error"]["code"]) == (405, "method_not_allowed")
    assert raw_hook.deliveries() == []


def test_the_registry_refuses_a_webhook_without_a_verifier_or_with_unknown_methods() -> None:
    class NoVerifier(Webhook):
        name = "none"
        event_type = Header("X-Kind")
        events = (RawEvent,)

    class Patch(RawWebhook):
        methods = frozenset({"PATCH"})

    for webhook, rule in ((NoVerifier, "webhook_verifier"), (Patch, "webhook_events")):
        with pytest.raises(DefinitionError) as caught:
            Registry().register(Definition(id="bad", name="Bad", description="x", webhooks=(webhook,)))
        assert rule in str(caught.value)
