"""Deliveries whose bytes the database cannot hold as text, and timestamps that are not ASCII digits.

An authentic delivery is recorded whatever its bytes (refusing it would make the provider retry it forever), on both
databases; a timestamp header that is not ASCII digits is ``invalid_signature``, never a 500.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from sqlmodel import select

from engine.store.tables import DeliveryStatus, WebhookDelivery
from engine.webhooks.verification import InvalidSignature, verify_slack, verify_standard_webhooks, verify_stripe
from support.embedded import EmbeddedWorker
from support.webhook_kit import Setup, sign


def rows(setup: Setup) -> list[WebhookDelivery]:
    with setup.runtime.db.session() as session:
        return list(session.exec(select(WebhookDelivery)))


@pytest.mark.parametrize("delivery", ["ev\x00nt", "\ud800", "x" * 150 + "\udfff" * 100])
@pytest.mark.parametrize("scheme", ["slack", "stripe"])
async def test_a_delivery_id_the_store_cannot_hold_is_recorded_by_its_hash(
    setup: Setup, app_for: Any, scheme: str, delivery: str, embedded: EmbeddedWorker
) -> None:
    app, client = app_for(setup.runtime)
    embedded.start(app)
    if scheme == "slack":
        data: dict[str, Any] = {"type": "event_callback", "event_id": delivery, "event": {"type": "item.changed"}}
    else:
        data = {"id": delivery, "type": "item.changed"}
    body = json.dumps(data).encode()  # "\u0000", "\ud800": escapes, as a JSON encoder writes them
    response = await client.post(
        f"/v1/webhooks/{setup.token(scheme)}", content=body, headers=sign(scheme, body, setup.secret(scheme))
    )
    assert response.status_code == 202, response.text
    key = response.json()["delivery_id"]
    assert key.startswith("sha256:")
    again = await client.post(
        f"/v1/webhooks/{setup.token(scheme)}", content=body, headers=sign(scheme, body, setup.secret(scheme))
    )
    assert again.json() == {"status": "duplicate", "delivery_id": key}
    await embedded.drain()
    [row] = rows(setup)
    assert row.body == body and row.delivery_id == key


@pytest.mark.parametrize("event", ["item\x00changed", "\ud83d"])
async def test_an_event_type_the_store_cannot_hold_is_unrouted(
    setup: Setup, app_for: Any, event: str, embedded: EmbeddedWorker
) -> None:
    app, client = app_for(setup.runtime)
    embedded.start(app)
    body = json.dumps({"id": "evt-1", "type": event}).encode()
    response = await client.post(
        f"/v1/webhooks/{setup.token('stripe')}", content=body, headers=sign("stripe", body, setup.secret("stripe"))
    )
    assert response.status_code == 202, response.text
    await embedded.drain()
    [row] = rows(setup)
    assert row.status == DeliveryStatus.unrouted
    assert row.event_type == event.encode("unicode_escape").decode("ascii")


async def test_non_ascii_header_bytes_are_recorded(setup: Setup, app_for: Any, embedded: EmbeddedWorker) -> None:
    app, client = app_for(setup.runtime)
    embedded.start(app)
    body = b'{"type": "item.changed", "item": {"id": "i-1"}}'
    headers: dict[str, Any] = sign("github", body, setup.secret("github"), delivery="d-\xe9")
    headers["X-GitHub-Delivery"] = "d-é".encode()
    headers["X-Trace"] = b"\xff\xfe\x80 bytes"
    response = await client.post(f"/v1/webhooks/{setup.token('github')}", content=body, headers=headers)
    assert response.status_code == 202, response.text
    await embedded.drain()
    [row] = rows(setup)
    assert row.headers["x-trace"] == b"\xff\xfe\x80 bytes".decode("latin-1")
    assert row.delivery_id == "d-é".encode().decode("latin-1")


def header_bytes(text: str) -> bytes:
    """What a client sends so that the server, decoding headers as Latin-1, reads ``text`` back (when it can)."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode()


@pytest.mark.parametrize("stamp", ["²", "1²³", "①②", "٣٣٣", "1_700_000_000", "+1700000000", "9" * 40])
@pytest.mark.parametrize("scheme", ["slack", "standard", "stripe"])
async def test_a_timestamp_that_is_not_ascii_digits_is_invalid_signature(
    setup: Setup, app_for: Any, scheme: str, stamp: str
) -> None:
    _, client = app_for(setup.runtime)
    body = b'{"type": "item.changed", "id": "evt-2", "event_id": "evt-2", "event": {"type": "item.changed"}}'
    headers: dict[str, Any] = sign(scheme, body, setup.secret(scheme))
    if scheme == "slack":
        headers["X-Slack-Request-Timestamp"] = header_bytes(stamp)
    elif scheme == "standard":
        headers["webhook-timestamp"] = header_bytes(stamp)
    else:
        signature = headers["Stripe-Signature"].split(",", 1)[1]
        headers["Stripe-Signature"] = header_bytes(f"t={stamp},{signature}")
    response = await client.post(f"/v1/webhooks/{setup.token(scheme)}", content=body, headers=headers)
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "invalid_signature"


@pytest.mark.parametrize("stamp", ["²", "٣٣٣", "①"])
def test_the_schemes_read_ascii_digits_only(stamp: str) -> None:
    now = time.time()
    with pytest.raises(InvalidSignature, match="malformed"):
        verify_slack(b"{}", {"x-slack-request-timestamp": stamp, "x-slack-signature": "v0=00"}, "s", now=now)
    headers = {"webhook-id": "m", "webhook-timestamp": stamp, "webhook-signature": "v1,AAAA"}
    with pytest.raises(InvalidSignature, match="malformed"):
        verify_standard_webhooks(b"{}", headers, "whsec_" + "QUFBQQ==", now=now)
    with pytest.raises(InvalidSignature, match="malformed"):
        verify_stripe(b"{}", {"stripe-signature": f"t={stamp},v1=00"}, "s", now=now)
