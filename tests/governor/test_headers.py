"""What the governor learns from a provider's answer: pauses and rates, in every header form providers send."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from engine.governor.headers import Learned, learn

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def headers(**values: str) -> httpx.Headers:
    # Raw bytes, as a hostile server sends them: what is not ASCII arrives as UTF-8.
    return httpx.Headers([(name.replace("_", "-").encode(), value.encode()) for name, value in values.items()])


def test_a_throttled_answer_pauses_for_its_retry_after() -> None:
    assert learn(429, headers(Retry_After="30"), now=NOW) == Learned(pause=30.0)
    assert learn(503, headers(Retry_After="5"), now=NOW).pause == 5.0  # Graph throttles with 503 too
    assert learn(429, headers(), now=NOW).pause == 1.0  # throttled without a wait: a short pause


def test_a_successful_answer_with_retry_after_is_no_pause() -> None:
    assert learn(200, headers(Retry_After="30"), now=NOW) == Learned()


def test_github_style_exhausted_window_pauses_until_its_epoch_reset() -> None:
    reset = int(NOW.timestamp()) + 90
    got = learn(200, headers(X_RateLimit_Remaining="0", X_RateLimit_Reset=str(reset)), now=NOW)
    assert got.pause == 90.0
    assert learn(200, headers(X_RateLimit_Remaining="7", X_RateLimit_Reset=str(reset)), now=NOW).pause is None


def test_ietf_draft_fields_older_form() -> None:
    got = learn(
        200, headers(RateLimit_Limit="100, 100;w=60, 1000;w=3600", RateLimit_Remaining="0", RateLimit_Reset="12")
    )
    assert got.pause == 12.0
    assert got.rate == pytest.approx(1000 / 3600)  # the strictest window


def test_ietf_draft_flat_ratelimit_field() -> None:
    assert learn(200, headers(RateLimit="limit=100, remaining=0, reset=30")).pause == 30.0
    assert learn(200, headers(RateLimit="limit=100, remaining=3, reset=30")).pause is None


def test_ietf_structured_fields_with_several_windows() -> None:
    got = learn(
        200,
        headers(
            RateLimit='"burst";r=0;t=4, "daily";r=900;t=80000',
            RateLimit_Policy='"burst";q=10;w=1, "daily";q=1000;w=86400',
        ),
    )
    assert got.pause == 4.0
    assert got.rate == pytest.approx(1000 / 86400)


@pytest.mark.parametrize("value", ["inf", "nan", "1e400", "٣", "²", "-5", "5.5", "9" * 5000])
def test_hostile_numbers_teach_nothing(value: str) -> None:
    got = learn(200, headers(X_RateLimit_Remaining="0", X_RateLimit_Reset=value, RateLimit_Policy=f"{value};w=60"))
    assert got == Learned()
    assert learn(200, headers(RateLimit_Policy=f"10;w={value}")) == Learned()
