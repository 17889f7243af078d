"""The Standard Webhooks headers of one delivery, signed with the ``standardwebhooks`` library itself.

``webhook-id`` is the event ID (the same on every attempt, so a receiver de-duplicates on it), ``webhook-timestamp``
the attempt's Unix time (receivers refuse stale ones), and ``webhook-signature`` one ``v1,<base64 HMAC-SHA256>`` per
secret, space-separated: during a rotation's overlap both the new and the previous secret sign.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from standardwebhooks import Webhook


def encode_body(payload: dict[str, object]) -> str:
    """The exact text that is signed and sent (compact JSON)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def headers(event_id: str, body: str, secrets: Sequence[str], now: datetime) -> dict[str, str]:
    if not secrets:
        raise ValueError("a delivery is signed with at least one secret")
    signatures = " ".join(Webhook(secret).sign(event_id, now, body) for secret in secrets)
    return {
        "content-type": "application/json",
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signatures,
    }
