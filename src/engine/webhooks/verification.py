"""How a webhook's deliveries prove they come from the provider: the ``Verifier`` base class and its schemes.

A webhook declares one ``Verifier`` (data: which header, where the secret comes from); the engine calls its
``verify`` on the raw body before anything is parsed or recorded. The six shipped schemes are subclasses here, each
backed by a pure function (raw body + headers + secret(s) + now → accept or raise) that tests can call directly; a
definition whose provider does something else (Graph's ``clientState`` inside the body) subclasses ``Verifier`` in
its own module, and the registry refuses a verifier that is not one.

Every check runs on the raw bytes before anything is parsed, compares in constant time (``hmac.compare_digest``) and
accepts several secrets (a key rotation in progress: any one of them may have signed). Failures are typed:

- ``InvalidSignature`` (401 ``invalid_signature``): a missing or malformed header, no matching signature;
- ``StaleDelivery`` (401 ``stale_delivery``): the signature is authentic but its timestamp is outside the tolerance
  (a replay). The signature is checked first, so a forged request never learns anything about the clock.

Messages name the header at fault, never a secret or an expected value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _random
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from engine.errors import TetherError
from engine.kit.inputs import ascii_int
from engine.webhooks.requests import Reply, WebhookRequest

__all__ = [
    "BearerToken",
    "EndpointSecret",
    "HmacSha256",
    "InvalidSignature",
    "OperatorSecret",
    "SecretSource",
    "SharedSecretHeader",
    "SlackSignature",
    "StaleDelivery",
    "StandardWebhooks",
    "StripeSignature",
    "Verifier",
    "lower_headers",
    "verify",
    "verify_bearer",
    "verify_hmac_sha256",
    "verify_shared_secret",
    "verify_slack",
    "verify_standard_webhooks",
    "verify_stripe",
]


class InvalidSignature(TetherError):
    """A delivery's signature is missing, malformed or does not match."""

    code = "invalid_signature"
    status = 401


class StaleDelivery(TetherError):
    """An authentic delivery whose timestamp is outside the scheme's tolerance (a replay or a skewed clock)."""

    code = "stale_delivery"
    status = 401


def lower_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers with lower-case names (the first value of a repeated header wins)."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, str] = {}
    for name, value in items:
        out.setdefault(name.lower(), value)
    return out


def _bytes(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def _any_equal(candidates: Iterable[bytes], expected: Sequence[bytes]) -> bool:
    """Constant time per comparison; every pair is compared (no early exit on a match)."""
    found = False
    for candidate in candidates:
        for value in expected:
            found |= hmac.compare_digest(candidate, value)
    return found


def _require(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name.lower(), "").strip()
    if not value:
        raise InvalidSignature(f"missing {name} header")
    return value


def _timestamp(text: str, header: str) -> int:
    # ASCII digits only: '²'.isdigit() is true (and int() refuses it), and int() reads Arabic-Indic digits, which
    # no sender writes and which would sign differently from the number they stand for.
    value = ascii_int(text, max_digits=12)
    if value is None:
        raise InvalidSignature(f"malformed {header} header")
    return value


def _check_window(timestamp: int, now: float, tolerance: int) -> None:
    if abs(now - timestamp) > tolerance:
        raise StaleDelivery(f"the delivery's timestamp is outside the {tolerance} s tolerance")


def _secrets(secrets: str | Sequence[str]) -> list[str]:
    values = [secrets] if isinstance(secrets, str) else list(secrets)
    values = [s for s in values if s]
    if not values:
        # A configuration fault, but to the sender it is indistinguishable from a wrong signature.
        raise InvalidSignature("no verification secret is configured for this endpoint")
    return values


# -- schemes -------------------------------------------------------------------------------------------------


def verify_hmac_sha256(
    body: bytes,
    headers: Mapping[str, str],
    secrets: str | Sequence[str],
    *,
    header: str,
    prefix: str = "",
    encoding: str = "hex",
) -> None:
    """GitHub style: ``{header}: {prefix}{hex or base64 of HMAC-SHA256(secret, body)}``. No timestamp: replay
    protection is the delivery ID."""
    keys = _secrets(secrets)
    value = _require(headers, header)
    if not value.startswith(prefix):
        raise InvalidSignature(f"malformed {header} header")
    given = _bytes(value[len(prefix) :])
    expected = []
    for key in keys:
        digest = _hmac(_bytes(key), body)
        expected.append(digest.hex().encode() if encoding == "hex" else base64.b64encode(digest))
    if encoding == "hex":
        given = given.lower()
    if not _any_equal([given], expected):
        raise InvalidSignature(f"{header} does not match the body")


def verify_slack(
    body: bytes, headers: Mapping[str, str], secrets: str | Sequence[str], *, now: float, tolerance: int = 300
) -> None:
    """Slack v0: ``X-Slack-Signature: v0=hex(HMAC(secret, "v0:{X-Slack-Request-Timestamp}:{body}"))``."""
    keys = _secrets(secrets)
    ts_text = _require(headers, "X-Slack-Request-Timestamp")
    signature = _require(headers, "X-Slack-Signature")
    timestamp = _timestamp(ts_text, "X-Slack-Request-Timestamp")
    message = b"v0:" + ts_text.encode() + b":" + body
    expected = [b"v0=" + _hmac(_bytes(k), message).hex().encode() for k in keys]
    if not _any_equal([_bytes(signature)], expected):
        raise InvalidSignature("X-Slack-Signature does not match the body")
    _check_window(timestamp, now, tolerance)


def standard_webhooks_key(secret: str) -> bytes:
    """A Standard Webhooks secret is base64 of the key, usually prefixed ``whsec_``."""
    text = secret[len("whsec_") :] if secret.startswith("whsec_") else secret
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSignature("the endpoint's Standard Webhooks secret is not base64") from None


def verify_standard_webhooks(
    body: bytes, headers: Mapping[str, str], secrets: str | Sequence[str], *, now: float, tolerance: int = 300
) -> None:
    """Standard Webhooks: ``webhook-signature: v1,<b64> [v1,<b64> …]`` over ``"{id}.{timestamp}.{body}"``.

    Several space-separated signatures (the sender rotating keys) and several secrets (us rotating) are accepted:
    any signature made with any secret passes. The ``svix-*`` header names are accepted too.
    """
    keys = _secrets(secrets)
    prefix = "webhook-" if "webhook-signature" in headers else "svix-"
    msg_id = _require(headers, prefix + "id")
    ts_text = _require(headers, prefix + "timestamp")
    signatures = _require(headers, prefix + "signature")
    timestamp = _timestamp(ts_text, prefix + "timestamp")
    message = _bytes(msg_id) + b"." + ts_text.encode() + b"." + body
    expected = [base64.b64encode(_hmac(standard_webhooks_key(k), message)) for k in keys]
    given = [_bytes(part[3:]) for part in signatures.split(" ") if part.startswith("v1,")]
    if not given:
        raise InvalidSignature(f"malformed {prefix}signature header")
    if not _any_equal(given, expected):
        raise InvalidSignature(f"no {prefix}signature matches the body")
    _check_window(timestamp, now, tolerance)


def verify_stripe(
    body: bytes,
    headers: Mapping[str, str],
    secrets: str | Sequence[str],
    *,
    now: float,
    header: str = "Stripe-Signature",
    tolerance: int = 300,
) -> None:
    """Stripe style: ``t=<unix>,v1=<hex>[,v1=<hex>…]`` over ``"{t}.{body}"`` (other schemes such as ``v0`` ignored)."""
    keys = _secrets(secrets)
    value = _require(headers, header)
    ts_text = ""
    given: list[bytes] = []
    for item in value.split(","):
        name, sep, part = item.strip().partition("=")
        if not sep:
            continue
        if name == "t" and not ts_text:
            ts_text = part
        elif name == "v1":
            given.append(_bytes(part))
    if not ts_text or not given:
        raise InvalidSignature(f"malformed {header} header")
    timestamp = _timestamp(ts_text, header)
    message = ts_text.encode() + b"." + body
    expected = [_hmac(_bytes(k), message).hex().encode() for k in keys]
    if not _any_equal(given, expected):
        raise InvalidSignature(f"no {header} signature matches the body")
    _check_window(timestamp, now, tolerance)


def verify_bearer(headers: Mapping[str, str], secrets: str | Sequence[str]) -> None:
    """``Authorization: Bearer <token>`` equal to one of the secrets."""
    keys = _secrets(secrets)
    value = _require(headers, "Authorization")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidSignature("malformed Authorization header")
    if not _any_equal([_bytes(token.strip())], [_bytes(k) for k in keys]):
        raise InvalidSignature("the bearer token does not match")


def verify_shared_secret(
    headers: Mapping[str, str], secrets: str | Sequence[str], *, header: str, schemes: Sequence[str] = ("",)
) -> None:
    """``{header}: {scheme}<secret>``, the whole value equal to one of the secrets behind one of the accepted
    scheme words (Okta's event hooks send the ``Authorization`` value configured on the hook verbatim)."""
    keys = _secrets(secrets)
    value = _require(headers, header)
    if not _any_equal([_bytes(value)], [_bytes(scheme + k) for k in keys for scheme in schemes]):
        raise InvalidSignature(f"the {header} header does not match")


def verify(
    verifier: Verifier,
    body: bytes,
    headers: Mapping[str, str],
    secrets: str | Sequence[str],
    *,
    now: float | None = None,
) -> None:
    """Check one delivery against a webhook's verifier at ``now`` (the current time when ``None``); ``headers``
    must have lower-case names."""
    verifier.verify(body, headers, secrets, now=time.time() if now is None else now)


# -- where a verification secret comes from ------------------------------------------------------------------


@dataclass(frozen=True)
class OperatorSecret:
    """An operator config field (one secret for every integration, e.g. a GitHub App's webhook secret)."""

    field: str


@dataclass(frozen=True)
class EndpointSecret:
    """A secret Tether generates per endpoint row and stores encrypted."""


SecretSource = OperatorSecret | EndpointSecret


# -- verifiers -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Verifier(ABC):
    """How one webhook's deliveries are verified. Subclass it (a frozen keyword-only dataclass) for a scheme of
    your own and implement ``verify``; the rest has defaults that fit most schemes."""

    secret: SecretSource
    #: Whether ``verify`` or ``handshake`` needs the parsed body, so the endpoint parses it before acknowledging.
    reads_payload: ClassVar[bool] = False

    @abstractmethod
    def verify(self, body: bytes, headers: Mapping[str, str], secrets: str | Sequence[str], *, now: float) -> None:
        """Accept the raw delivery or raise ``InvalidSignature`` / ``StaleDelivery``. Any one of ``secrets`` may
        have signed (a rotation in progress); ``headers`` have lower-case names. Compare in constant time."""

    def delivery_id(self, headers: Mapping[str, str]) -> str | None:
        """The scheme's own delivery ID, used when the webhook declares none (``None``: the scheme has none)."""
        return None

    def new_secret(self) -> str:
        """A new endpoint secret (``EndpointSecret``), in the shape the scheme expects."""
        return _random.token_urlsafe(32)

    def challenge(self, request: WebhookRequest) -> Reply | None:
        """An answer given *before* verification, for the scheme's unauthenticated handshake (Microsoft Graph's
        ``validationToken``, which carries no secret); ``None``: the request is not one. Only ever echo what the
        provider sent: nothing here is verified."""
        return None

    def handshake(self, request: WebhookRequest) -> Reply | dict[str, Any] | None:
        """The scheme's own handshake answer after verification (Slack's ``url_verification``); ``None``: the
        request is not one."""
        return None


@dataclass(frozen=True, kw_only=True)
class HmacSha256(Verifier):
    """HMAC-SHA256 of the raw body in one header, e.g. GitHub's ``X-Hub-Signature-256: sha256=<hex>``."""

    header: str
    prefix: str = ""
    encoding: str = "hex"

    def verify(self, body: bytes, headers: Mapping[str, str], secrets: str | Sequence[str], *, now: float) -> None:
        verify_hmac_sha256(body, headers, secrets, header=self.header, prefix=self.prefix, encoding=self.encoding)


@dataclass(frozen=True, kw_only=True)
class SlackSignature(Verifier):
    """Slack v0 signing: ``v0:{timestamp}:{body}`` with a replay window; answers Slack's ``url_verification``."""

    tolerance_seconds: int = 300
    reads_payload: ClassVar[bool] = True

    def verify(self, body: bytes, headers: Mapping[str, str], secrets: str | Sequence[str], *, now: float) -> None:
        verify_slack(body, headers, secrets, now=now, tolerance=self.tolerance_seconds)

    def handshake(self, request: WebhookRequest) -> Reply | dict[str, Any] | None:
        payload = request.payload
        if (
            isinstance(payload, dict)
            and payload.get("type") == "url_verification"
            and isinstance(payload.get("challenge"), str)
        ):
            return {"challenge": payload["challenge"]}
        return None


@dataclass(frozen=True, kw_only=True)
class StandardWebhooks(Verifier):
    """Standard Webhooks (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``; several signatures)."""

    tolerance_seconds: int = 300

    def verify(self, body: bytes, headers: Mapping[str, str], secrets: str | Sequence[str], *, now: float) -> None:
        verify_standard_webhooks(body, headers, secrets, now=now, tolerance=self.tolerance_seconds)

    def delivery_id(self, headers: Mapping[str, str]) -> str | None:
        return headers.get("webhook-id") or headers.get("svix-id") or None

    def new_secret(self) -> str:
        return "whsec_" + base64.b64encode(_random.token_bytes(32)).decode()


@dataclass(frozen=True, kw_only=True)
class StripeSignature(Verifier):
    """Stripe-style ``t=…,v1=…`` header."""

    header: str = "Stripe-Signature"
    tolerance_seconds: int = 300

    def verify(self, body: bytes, headers: Mapping[str, str], secrets: str | Sequence[str], *, now: float) -> None:
        verify_stripe(body, headers, secrets, now=now, header=self.header, tolerance=self.tolerance_seconds)


@dataclass(frozen=True, kw_only=True)
class BearerToken(Verifier):
    """A shared bearer token in ``Authorization`` (push endpoints such as SCIM), compared in constant time."""

    def verify(self, body: bytes, headers: Mapping[str, str], secrets: str | Sequence[str], *, now: float) -> None:
        verify_bearer(headers, secrets)


@dataclass(frozen=True, kw_only=True)
class SharedSecretHeader(Verifier):
    """A header whose whole value is the shared secret (Okta's event hook ``Authorization``), constant-time."""

    header: str = "Authorization"
    #: What may stand before the secret in the header (``("", "Bearer ")``: the bare secret or a bearer token).
    schemes: tuple[str, ...] = ("",)

    def verify(self, body: bytes, headers: Mapping[str, str], secrets: str | Sequence[str], *, now: float) -> None:
        verify_shared_secret(headers, secrets, header=self.header, schemes=self.schemes)
