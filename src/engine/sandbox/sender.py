"""Change events, signed with Standard Webhooks and delivered to the account's subscriptions through egress.

Each change the controls make becomes one event, stored (``sandbox_event``) before it is sent so that the
``duplicate`` control can send the very same delivery again: same ``webhook-id``, same body, a fresh timestamp and
signature, as a provider retrying does. Events are sent after the change's transaction has committed (the
receiver may read the API back at once), by the egress guard's own-origin rule for ``/v1/webhooks/`` only.

The signature is the scheme's (``v1,`` + base64 HMAC-SHA256 of ``"{id}.{timestamp}.{body}"`` under the decoded
``whsec_`` secret): a few lines, so no runtime dependency; the tests verify it with the ``standardwebhooks``
reference library and with Tether's own verifier. A failed delivery is logged by subscription and status only
(never the URL, which holds the endpoint's token, nor the secret) and recorded on the subscription.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import httpx
from sqlmodel import col, select

from engine.errors import TetherError
from engine.kit.egress import egress_client
from engine.sandbox.database import sandbox_db
from engine.sandbox.subscriptions import of_account, secret_of
from engine.sandbox.tables import SandboxEvent, SandboxWebhook
from engine.webhooks.verification import standard_webhooks_key

if TYPE_CHECKING:
    from engine.context import EngineContext

log = logging.getLogger("tether.sandbox")

WEBHOOKS_PATH = "/v1/webhooks/"
SEND_TIMEOUT = 10.0


@dataclass(frozen=True)
class Sent:
    subscription_id: str
    #: The receiver's HTTP status; 0 when there was no answer (refused, unreachable, timed out).
    status: int
    error: str = ""


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value of one delivery."""
    message = f"{msg_id}.{timestamp}.".encode() + body
    mac = hmac.new(standard_webhooks_key(secret), message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def record_event(runtime: EngineContext, account_id: str, event_type: str, kind: str, data: dict[str, Any]) -> str:
    """Store the event of one change; returns its ``webhook-id``."""
    event_id = "msg_" + uuid.uuid4().hex
    body = json.dumps({"type": event_type, "kind": kind, "data": data}, separators=(",", ":")).encode()
    with sandbox_db(runtime.db).session() as session:
        session.add(SandboxEvent(id=event_id, account_id=account_id, body=body))
    return event_id


def last_event(runtime: EngineContext, account_id: str) -> SandboxEvent | None:
    with sandbox_db(runtime.db).session() as session:
        return session.exec(
            select(SandboxEvent)
            .where(SandboxEvent.account_id == account_id)
            .order_by(col(SandboxEvent.created_at).desc())
        ).first()


async def deliver(runtime: EngineContext, account_id: str, event_id: str) -> list[Sent]:
    """Send the stored event to every subscription of the account; each outcome is recorded on it."""

    def load() -> tuple[bytes, list[tuple[SandboxWebhook, str]]]:
        with sandbox_db(runtime.db).session() as session:
            event = session.get_one(SandboxEvent, event_id)
        return event.body, [(row, secret_of(runtime, row)) for row in of_account(sandbox_db(runtime.db), account_id)]

    body, targets = await anyio.to_thread.run_sync(load)
    results = []
    async with egress_client(own_paths=(WEBHOOKS_PATH,), timeout=SEND_TIMEOUT, follow_redirects=False) as client:
        for row, secret in targets:
            results.append(await _send(client, row, secret, event_id, body))
    await anyio.to_thread.run_sync(lambda: _record(runtime, results))
    return results


async def _send(client: httpx.AsyncClient, row: SandboxWebhook, secret: str, event_id: str, body: bytes) -> Sent:
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, event_id, timestamp, body),
    }
    try:
        response = await client.post(row.url, content=body, headers=headers)
    except TetherError as exc:
        log.warning("sandbox webhook %s: not delivered (%s)", row.id, exc.code)
        return Sent(row.id, 0, exc.code)
    except httpx.HTTPError as exc:
        log.warning("sandbox webhook %s: not delivered (%s)", row.id, type(exc).__name__)
        return Sent(row.id, 0, type(exc).__name__)
    if response.status_code >= 300:
        log.warning("sandbox webhook %s: the receiver answered %d", row.id, response.status_code)
    return Sent(row.id, response.status_code)


def _record(runtime: EngineContext, results: list[Sent]) -> None:
    now = datetime.now(UTC)
    with sandbox_db(runtime.db).session() as session:
        for sent in results:
            row = session.get(SandboxWebhook, sent.subscription_id)
            if row is None:  # unsubscribed while the delivery was under way
                continue
            row.last_status, row.last_error, row.last_delivery_at = sent.status, sent.error[:200], now
            session.add(row)
