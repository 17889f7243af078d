"""Verify an outbound event from Tether (Standard Webhooks), with the standard library only.

The signed content is ``{webhook-id}.{webhook-timestamp}.{body}``; ``webhook-signature`` holds one or more
space-separated ``v1,<base64 HMAC-SHA256>`` (several during a secret's rotation); the key is the base64 after
``whsec_``. A timestamp more than five minutes from now, either way, is refused (a replay).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

TOLERANCE_SECONDS = 5 * 60
_PREFIX = "whsec_"


class EventVerificationError(ValueError):
    """The event is not one Tether signed with this secret (or it is too old or too new)."""


def verify_event(body: bytes | str, headers: Mapping[str, str], secret: str, *, now: float | None = None) -> Any:
    """The event's JSON once its signature verified; ``EventVerificationError`` otherwise."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    lowered = {k.lower(): v for k, v in headers.items()}
    event_id, stamp, signatures = (lowered.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not (event_id and stamp and signatures):
        raise EventVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    _check_timestamp(stamp, time.time() if now is None else now)
    expected = hmac.new(_key(secret), f"{event_id}.{stamp}.{text}".encode(), hashlib.sha256).digest()
    for entry in signatures.split(" "):
        version, _, value = entry.partition(",")
        if version != "v1":
            continue
        try:
            candidate = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(expected, candidate):
            return json.loads(text)
    raise EventVerificationError("no signature matches")


def _key(secret: str) -> bytes:
    raw = secret.removeprefix(_PREFIX)
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise EventVerificationError("the secret is not whsec_ followed by base64") from None
    if not key:
        raise EventVerificationError("the secret is empty")
    return key


def _check_timestamp(stamp: str, now: float) -> None:
    if not stamp.isascii() or not stamp.isdigit():
        raise EventVerificationError("webhook-timestamp is not Unix seconds")
    seconds = int(stamp)
    if abs(now - seconds) > TOLERANCE_SECONDS:
        raise EventVerificationError("webhook-timestamp is more than five minutes from now")
