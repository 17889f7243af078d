"""The signature schemes as pure functions, against each provider's reference signer and published vectors."""

from __future__ import annotations

import time

import pytest

from engine.webhooks.verification import (
    BearerToken,
    EndpointSecret,
    HmacSha256,
    InvalidSignature,
    SlackSignature,
    StaleDelivery,
    StandardWebhooks,
    StripeSignature,
    lower_headers,
    verify,
)
from support.webhook_kit import REQUIRED_HEADER, SCHEMES, TIMESTAMPED, event_body, sign, wrong_secret

VERIFIERS = {
    "github": HmacSha256(header="X-Hub-Signature-256", prefix="sha256=", secret=EndpointSecret()),
    "slack": SlackSignature(secret=EndpointSecret()),
    "standard": StandardWebhooks(secret=EndpointSecret()),
    "stripe": StripeSignature(secret=EndpointSecret()),
    "bearer": BearerToken(secret=EndpointSecret()),
}
SECRETS = {
    "github": "gh-secret",
    "slack": "8f742231b10e8888abcd99yyyzzz85a5",
    "standard": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "stripe": "whsec_stripe_test",
    "bearer": "bearer-token-value",
}


def check(scheme: str, body: bytes, headers: dict[str, str], secret: str | list[str], now: float | None = None) -> None:
    verify(VERIFIERS[scheme], body, lower_headers(headers), secret, now=now)


def test_github_published_vector() -> None:
    headers = {"X-Hub-Signature-256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"}
    check("github", b"Hello, World!", headers, "It's a Secret to Everybody")


def test_slack_published_vector() -> None:
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
        b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
        b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
        b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    headers = {
        "X-Slack-Request-Timestamp": "1531420618",
        "X-Slack-Signature": "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
    }
    check("slack", body, headers, "8f742231b10e8888abcd99yyyzzz85a5", now=1531420618 + 10)


def test_standard_webhooks_published_vector() -> None:
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    check("standard", b'{"test": 2432232314}', headers, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", now=1614265330)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_reference_signed_request_is_accepted(scheme: str) -> None:
    body = event_body(scheme, "item.changed", "d-1")
    check(scheme, body, sign(scheme, body, SECRETS[scheme]), SECRETS[scheme])


@pytest.mark.parametrize("scheme", SCHEMES)
def test_flipped_byte_is_rejected(scheme: str) -> None:
    body = event_body(scheme, "item.changed", "d-1")
    headers = sign(scheme, body, SECRETS[scheme])
    tampered = bytes([body[0] ^ 0x01]) + body[1:]
    if scheme == "bearer":  # the token does not cover the body: flip a byte of the token instead
        headers["Authorization"] = headers["Authorization"][:-1] + chr(ord(headers["Authorization"][-1]) ^ 1)
        tampered = body
    with pytest.raises(InvalidSignature) as caught:
        check(scheme, tampered, headers, SECRETS[scheme])
    assert caught.value.code == "invalid_signature" and caught.value.status == 401


@pytest.mark.parametrize("scheme", SCHEMES)
def test_wrong_secret_is_rejected(scheme: str) -> None:
    body = event_body(scheme, "item.changed", "d-1")
    with pytest.raises(InvalidSignature):
        check(scheme, body, sign(scheme, body, wrong_secret(scheme)), SECRETS[scheme])


@pytest.mark.parametrize("scheme", SCHEMES)
def test_missing_header_is_rejected(scheme: str) -> None:
    body = event_body(scheme, "item.changed", "d-1")
    headers = sign(scheme, body, SECRETS[scheme])
    del headers[REQUIRED_HEADER[scheme]]
    with pytest.raises(InvalidSignature, match="missing"):
        check(scheme, body, headers, SECRETS[scheme])


@pytest.mark.parametrize("scheme", TIMESTAMPED)
@pytest.mark.parametrize("skew", [-600, 600])
def test_replayed_or_future_timestamp_is_stale(scheme: str, skew: int) -> None:
    body = event_body(scheme, "item.changed", "d-1")
    now = int(time.time())
    headers = sign(scheme, body, SECRETS[scheme], timestamp=now + skew)
    with pytest.raises(StaleDelivery) as caught:
        check(scheme, body, headers, SECRETS[scheme], now=now)
    assert caught.value.code == "stale_delivery" and caught.value.status == 401


@pytest.mark.parametrize("scheme", TIMESTAMPED)
def test_timestamp_within_tolerance_is_accepted(scheme: str) -> None:
    body = event_body(scheme, "item.changed", "d-1")
    now = int(time.time())
    check(scheme, body, sign(scheme, body, SECRETS[scheme], timestamp=now - 290), SECRETS[scheme], now=now)


@pytest.mark.parametrize("scheme", TIMESTAMPED)
def test_forged_old_request_is_invalid_not_stale(scheme: str) -> None:
    body = event_body(scheme, "item.changed", "d-1")
    headers = sign(scheme, body, wrong_secret(scheme), timestamp=int(time.time()) - 3600)
    with pytest.raises(InvalidSignature):
        check(scheme, body, headers, SECRETS[scheme])


def test_standard_webhooks_several_signatures_and_secret_rotation() -> None:
    body = event_body("standard", "item.changed", "d-1")
    headers = sign("standard", body, SECRETS["standard"])
    headers["webhook-signature"] = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= " + headers["webhook-signature"]
    check("standard", body, headers, SECRETS["standard"])
    # Our side rotating: the old secret is still accepted next to the new one.
    check("standard", body, headers, [wrong_secret("standard"), SECRETS["standard"]])


def test_stripe_several_v1_signatures() -> None:
    body = event_body("stripe", "item.changed", "evt_1")
    header = sign("stripe", body, SECRETS["stripe"])["Stripe-Signature"]
    t, v1 = header.split(",")
    check("stripe", body, {"Stripe-Signature": f"{t},v1=deadbeef,{v1},v0=whatever"}, SECRETS["stripe"])


def test_the_reference_verifiers_agree_with_ours() -> None:
    """Cross-check the other way: what the reference libraries verify, we verify (and they refuse tampering)."""
    import githubkit.webhooks
    import standardwebhooks
    import stripe
    from slack_sdk.signature import SignatureVerifier

    body = event_body("standard", "item.changed", "msg_1")
    headers = sign("standard", body, SECRETS["standard"], delivery="msg_1")
    standardwebhooks.Webhook(SECRETS["standard"]).verify(body, headers)
    slack_headers = sign("slack", body, SECRETS["slack"])
    assert SignatureVerifier(SECRETS["slack"]).is_valid_request(body, slack_headers)
    stripe_header = sign("stripe", body, SECRETS["stripe"])["Stripe-Signature"]
    stripe.Webhook.construct_event(body.decode(), stripe_header, SECRETS["stripe"])
    assert githubkit.webhooks.verify(
        SECRETS["github"], body, sign("github", body, SECRETS["github"])["X-Hub-Signature-256"]
    )


def test_no_secret_configured_is_invalid_signature() -> None:
    body = b"{}"
    with pytest.raises(InvalidSignature):
        check("github", body, sign("github", body, "x"), [])
