"""``verify_event`` against the ``standardwebhooks`` library, both ways: what the library signs verifies here, what
this refuses the library refuses too (tampered body, another secret, a stale or future timestamp, no v1 entry), and
a rotation's several signatures verify with either secret."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tether_client import EventVerificationError, verify_event

BODY = json.dumps({"type": "records.changed", "data": {"after": 3, "through": 9}})


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def signed(secret: str, body: str = BODY, *, at: datetime | None = None, msg_id: str = "msg_1") -> dict[str, str]:
    moment = at or datetime.now(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, moment, body),
    }


def both(body: str, headers: dict[str, str], secret: str) -> tuple[object, object]:
    """(ours, the library's): the parsed event, or the exception class each raised."""
    results: list[object] = []
    for verify, error in ((verify_event, EventVerificationError), (Webhook(secret).verify, WebhookVerificationError)):
        try:
            results.append(verify(body, headers, secret) if verify is verify_event else verify(body, headers))
        except error:
            results.append("refused")
    return results[0], results[1]


def test_what_the_library_signs_verifies() -> None:
    secret = new_secret()
    headers = signed(secret)
    assert both(BODY, headers, secret) == (json.loads(BODY), json.loads(BODY))
    assert verify_event(BODY.encode(), {k.title(): v for k, v in headers.items()}, secret) == json.loads(BODY)


@pytest.mark.parametrize(
    "case",
    ["tampered", "other_secret", "stale", "future", "no_v1", "missing_header", "garbage_signature"],
)
def test_what_one_refuses_the_other_refuses(case: str) -> None:
    secret, body = new_secret(), BODY
    headers = signed(secret)
    if case == "tampered":
        body = BODY.replace("9", "10")
    elif case == "other_secret":
        headers = signed(new_secret())
    elif case == "stale":
        headers = signed(secret, at=datetime.now(UTC) - timedelta(minutes=6))
    elif case == "future":
        headers = signed(secret, at=datetime.now(UTC) + timedelta(minutes=6))
    elif case == "no_v1":
        headers["webhook-signature"] = headers["webhook-signature"].replace("v1,", "v2,")
    elif case == "missing_header":
        del headers["webhook-id"]
    elif case == "garbage_signature":
        headers["webhook-signature"] = "v1,bm90IGEgc2lnbmF0dXJl"
    assert both(body, headers, secret) == ("refused", "refused")


def test_within_the_tolerance_still_verifies() -> None:
    secret = new_secret()
    headers = signed(secret, at=datetime.now(UTC) - timedelta(minutes=4))
    assert both(BODY, headers, secret) == (json.loads(BODY), json.loads(BODY))


def test_a_rotations_signatures_verify_with_either_secret() -> None:
    old, new = new_secret(), new_secret()
    moment = datetime.now(UTC)
    signatures = " ".join(Webhook(s).sign("msg_2", moment, BODY) for s in (old, new))
    headers = {
        "webhook-id": "msg_2",
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signatures,
    }
    for secret in (old, new):
        assert both(BODY, headers, secret) == (json.loads(BODY), json.loads(BODY))
    assert both(BODY, headers, new_secret()) == ("refused", "refused")


def test_what_tether_signs_verifies_here_and_in_the_library() -> None:
    """The other way round: a delivery signed by Tether's own Standard Webhooks signer (the sandbox provider's
    sender, the same recipe as the outbound events) verifies with ``verify_event`` and with the library."""
    from engine.sandbox.sender import sign

    secret = new_secret()
    stamp = int(datetime.now(UTC).timestamp())
    headers = {
        "webhook-id": "msg_3",
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(secret, "msg_3", stamp, BODY.encode()),
    }
    assert both(BODY, headers, secret) == (json.loads(BODY), json.loads(BODY))
    assert both(BODY + " ", headers, secret) == ("refused", "refused")


def test_a_secret_that_is_not_base64_is_refused() -> None:
    with pytest.raises(EventVerificationError, match="whsec_"):
        verify_event(BODY, signed(new_secret()), "whsec_!!not base64!!")
