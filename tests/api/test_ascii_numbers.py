"""Numbers read from untrusted text are ASCII digits: ``'²'.isdigit()`` is true and ``int('²')`` raises."""

from __future__ import annotations

import httpx
import pytest

from engine.api.limits import declared_too_large
from engine.api.scim import _int as scim_int
from engine.custody import oauth
from engine.kit import egress
from engine.kit.inputs import ascii_digits, ascii_int, storable, unstorable_string
from engine.scim.protocol import ScimError

UNICODE_DIGITS = ["²", "①", "٣", "\uff11\uff12", "1²", "⁵"]
#: The ones a header can carry: HTTP header bytes are decoded as Latin-1.
LATIN1_DIGITS = ["²", "1²", "³¹"]


@pytest.mark.parametrize("text", [*UNICODE_DIGITS, "", " 1", "1_0", "+1", "-1", "1.0", "9" * 19])
def test_only_ascii_digits_are_a_number(text: str) -> None:
    assert not ascii_digits(text) and ascii_int(text) is None


def test_ascii_digits_are_read() -> None:
    assert ascii_int("0042") == 42 and ascii_int("9" * 18) == 10**18 - 1


@pytest.mark.parametrize("text", [*LATIN1_DIGITS, "1" * 5000])
def test_a_provider_retry_after_that_is_not_ascii_is_ignored(text: str) -> None:
    response = httpx.Response(503, headers=[(b"retry-after", text.encode("latin-1"))])
    assert oauth._retry_after(response) is None
    assert oauth._seconds(text) is None


@pytest.mark.parametrize("text", [*LATIN1_DIGITS, "1" * 5000])
def test_a_provider_content_length_that_is_not_ascii_is_metered_not_raised(text: str) -> None:
    request = httpx.Request("GET", "https://provider.example/x")
    response = httpx.Response(200, headers=[(b"content-length", text.encode("latin-1"))], request=request)
    meter, _ = egress._meter_for(request, response, 1024)
    assert meter is not None


@pytest.mark.parametrize(
    ("value", "expected"),
    [(b"1048576", False), (b"1048577", True), (b"00000000001", False), (b"9" * 5000, True), ("²".encode(), False),
     (b"\xb2", False), (b"-5", False), (None, False)],
)
def test_declared_length(value: bytes | None, expected: bool) -> None:
    assert declared_too_large(value) is expected


@pytest.mark.parametrize("value", ["٣", "²", " 1_0 ", True, 1.5, "abc"])
def test_scim_paging_numbers_are_ascii_or_json_integers(value: object) -> None:
    with pytest.raises(ScimError):
        scim_int(value, "count", 100)
    assert scim_int("10", "count", 100) == 10 and scim_int(7, "count", 100) == 7 and scim_int("-3", "c", 1) == -3


def test_storable_text() -> None:
    assert storable("plain") and storable("é ☃ 😀")
    assert not storable("a\x00") and not storable("\ud800") and not storable("é\udfff")
    deep: object = "ok"
    for _ in range(10_000):
        deep = [deep]
    assert not unstorable_string(deep)
    assert unstorable_string({"a": [{"b\x00": 1}]}) and unstorable_string([1, {"x": "\udc80"}])
