"""Signing an example delivery the way each built-in verifier expects, so the standard suite can check that a
webhook accepts a signed delivery and refuses a tampered one.

A definition's own ``Verifier`` subclass is signed by its ``sign(body, secret, now) -> headers`` method when it has
one, or, for a scheme whose secret travels inside the body (Graph's ``clientState``), by its
``sign_delivery(body, secret, now) -> (body, headers)``; without either the suite cannot make a signed example and
says so (the definition may declare the skip).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets as _random
from collections.abc import Callable
from typing import Any

from engine.webhooks.verification import (
    BearerToken,
    HmacSha256,
    SharedSecretHeader,
    SlackSignature,
    StandardWebhooks,
    StripeSignature,
    Verifier,
    standard_webhooks_key,
)

__all__ = ["can_sign", "sign", "signed_delivery"]


def _mac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def _hmac_sha256(v: HmacSha256, body: bytes, secret: str, now: int) -> dict[str, str]:
    digest = _mac(secret.encode(), body)
    value = digest.hex() if v.encoding == "hex" else base64.b64encode(digest).decode()
    return {v.header.lower(): v.prefix + value}


def _slack(v: SlackSignature, body: bytes, secret: str, now: int) -> dict[str, str]:
    stamp = str(now)
    signature = _mac(secret.encode(), b"v0:" + stamp.encode() + b":" + body).hex()
    return {"x-slack-request-timestamp": stamp, "x-slack-signature": "v0=" + signature}


def _standard(v: StandardWebhooks, body: bytes, secret: str, now: int) -> dict[str, str]:
    msg_id, stamp = "msg_suite" + _random.token_hex(6), str(now)
    signature = base64.b64encode(_mac(standard_webhooks_key(secret), f"{msg_id}.{stamp}.".encode() + body)).decode()
    return {"webhook-id": msg_id, "webhook-timestamp": stamp, "webhook-signature": "v1," + signature}


def _stripe(v: StripeSignature, body: bytes, secret: str, now: int) -> dict[str, str]:
    signature = _mac(secret.encode(), f"{now}.".encode() + body).hex()
    return {v.header.lower(): f"t={now},v1={signature}"}


def _bearer(v: BearerToken, body: bytes, secret: str, now: int) -> dict[str, str]:
    return {"authorization": "Bearer " + secret}


def _shared(v: SharedSecretHeader, body: bytes, secret: str, now: int) -> dict[str, str]:
    return {v.header.lower(): v.schemes[0] + secret}


_SIGNERS: dict[type[Verifier], Callable[[Any, bytes, str, int], dict[str, str]]] = {
    HmacSha256: _hmac_sha256,
    SlackSignature: _slack,
    StandardWebhooks: _standard,
    StripeSignature: _stripe,
    BearerToken: _bearer,
    SharedSecretHeader: _shared,
}


def can_sign(verifier: Verifier) -> bool:
    return (
        type(verifier) in _SIGNERS
        or callable(getattr(verifier, "sign", None))
        or callable(getattr(verifier, "sign_delivery", None))
    )


def signed_delivery(verifier: Verifier, body: bytes, secret: str, now: int) -> tuple[bytes, dict[str, str]]:
    """``body`` made a delivery ``verifier`` accepts with ``secret`` at ``now``: the body (rewritten by the
    verifier's ``sign_delivery`` when its secret travels inside it) and the headers to add (lower-case names)."""
    own = getattr(verifier, "sign_delivery", None)
    if callable(own):
        rewritten, headers = own(body, secret, now)
        return rewritten, {k.lower(): v for k, v in headers.items()}
    return body, sign(verifier, body, secret, now)


def sign(verifier: Verifier, body: bytes, secret: str, now: int) -> dict[str, str]:
    """The headers (lower-case names) that make ``body`` a delivery ``verifier`` accepts with ``secret`` at ``now``."""
    own = getattr(verifier, "sign", None)
    if callable(own):
        return {k.lower(): v for k, v in own(body, secret, now).items()}
    signer = _SIGNERS.get(type(verifier))
    if signer is None:
        raise NotImplementedError(f"no signer for {type(verifier).__name__}: give it a sign(body, secret, now) method")
    return signer(verifier, body, secret, now)
