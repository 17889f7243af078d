"""A webhook delivery's log lines in JSON (``TETHER_LOG_FORMAT=json``): they carry its delivery and integration IDs,
and neither the endpoint's signing secret, the signature nor the caller's ``Authorization`` (issue 23; the other paths
are in ``tests/observability/test_logs.py``)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import select

from engine.store.tables import DeliveryStatus, WebhookDelivery
from support.embedded import EmbeddedWorker
from support.json_log import json_lines, json_log
from support.webhook_kit import Setup, event_body, sign

CALLER_TOKEN = "caller-token-5b1e0c9f7d"


@pytest.fixture
def log() -> Iterator[io.StringIO]:
    with json_log() as stream:
        yield stream


async def test_an_unrouted_delivery_logs_its_ids_and_no_secret(
    sqlite_setup: Setup, app_for: Any, embedded: EmbeddedWorker, log: io.StringIO
) -> None:
    app, client = app_for(sqlite_setup.runtime)
    embedded.start(app)
    body = event_body("standard", "item.unknown", "msg_logs")
    headers = sign("standard", body, sqlite_setup.secret("standard"), delivery="msg_logs")
    response = await client.post(
        f"/v1/webhooks/{sqlite_setup.token('standard')}",
        content=body,
        headers={**headers, "Authorization": f"Bearer {CALLER_TOKEN}"},
    )
    assert response.status_code == 202, response.text
    await embedded.drain()
    with sqlite_setup.runtime.db.session() as session:
        [row] = session.exec(select(WebhookDelivery)).all()
    assert row.status == DeliveryStatus.unrouted
    lines = json_lines(log.getvalue())
    [unrouted] = [line for line in lines if "unrouted" in str(line["message"])]
    assert unrouted["delivery_id"] == row.id and unrouted["integration_id"] == sqlite_setup.integration.id
    text = log.getvalue()
    assert sqlite_setup.secret("standard") not in text and CALLER_TOKEN not in text
    assert not any(value in text for value in headers.values() if len(value) >= 16)
