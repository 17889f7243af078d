"""A provider's ``Retry-After`` is ASCII delta-seconds or an HTTP date; anything else is no wait we schedule.

``float()`` takes ``inf``, ``nan``, ``1e400``, ``1_0`` and Arabic-Indic digits, and ``'²'.isdigit()`` is true while
``float('²')`` raises: a hostile or broken header must neither crash the reader nor defer a run forever.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import httpx
import pytest
from botocore.exceptions import ClientError

from definitions.aws_security_hub.aws import DEFAULT_RETRY_AFTER as AWS_DEFAULT
from definitions.aws_security_hub.aws import translate as aws_translate
from definitions.github_app.rest import _retry_after as github_retry_after
from definitions.google_workspace.rest import DEFAULT_RETRY_AFTER as WORKSPACE_DEFAULT
from definitions.google_workspace.rest import _retry_after as workspace_retry_after
from definitions.microsoft_graph import _retry_after as graph_retry_after
from definitions.okta.api import retry_after as okta_retry_after
from engine.errors import ProviderError
from engine.kit.providerkit import RateLimited, retry_after_seconds
from engine.runs.execution import rate_limit_delay

HOSTILE = ["inf", "Infinity", "nan", "-inf", "1e400", "1_0", "٣", "²", "1²", "-5", "+5", "5.5", "9" * 5000, "junk"]


def _headers(name: str, value: str) -> httpx.Headers:
    # Header bytes arrive as Latin-1; what does not fit is sent as UTF-8 bytes, as a hostile server would.
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        raw = value.encode()
    return httpx.Headers([(name.encode(), raw)])


@pytest.mark.parametrize("value", HOSTILE)
def test_shared_parser_ignores_what_is_not_delta_seconds(value: str) -> None:
    assert retry_after_seconds(_headers("Retry-After", value)) is None
    assert retry_after_seconds(_headers("X-RateLimit-Reset", value)) is None


def test_shared_parser_reads_delta_seconds() -> None:
    assert retry_after_seconds({"Retry-After": " 42 "}) == 42.0
    assert retry_after_seconds({"Retry-After": "0"}) == 0.0


def aws_throttled(headers: httpx.Headers) -> ProviderError:
    """botocore's ClientError for a throttled call, as AWS answers it, through the definition's translation."""
    meta = {"HTTPStatusCode": 400, "HTTPHeaders": dict(headers.items())}
    return aws_translate(ClientError({"Error": {"Code": "ThrottlingException"}, "ResponseMetadata": meta}, "Op"), "op")


ParsedFrom = Callable[[httpx.Headers], float | None]
PARSERS: dict[str, tuple[ParsedFrom, float | None]] = {
    "github_app": (github_retry_after, None),
    "google_workspace": (lambda h: workspace_retry_after(httpx.Response(429, headers=h)), WORKSPACE_DEFAULT),
    "microsoft_graph": (lambda h: graph_retry_after(httpx.Response(429, headers=h)), None),
    "aws_security_hub": (lambda h: aws_throttled(h).retry_after, AWS_DEFAULT),
}


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("provider", sorted(PARSERS))
def test_every_definition_parser_survives_hostile_headers(provider: str, value: str) -> None:
    parse, default = PARSERS[provider]
    got = parse(_headers("Retry-After", value))
    assert got is None or (math.isfinite(got) and got >= 0)
    if default is not None:
        assert got == default
    assert parse(_headers("Retry-After", "17")) == 17.0


@pytest.mark.parametrize("value", HOSTILE)
def test_okta_reset_header_is_ascii_epoch_seconds(value: str) -> None:
    assert okta_retry_after(_headers("X-Rate-Limit-Reset", value), now=0.0) is None
    assert okta_retry_after(_headers("X-Rate-Limit-Reset", "1000"), now=990.0) == 10.0


@pytest.mark.parametrize("wait", [math.inf, -math.inf, math.nan, -1.0])
def test_a_wait_that_cannot_be_scheduled_is_dropped(wait: float) -> None:
    # A definition parsing its own header can still hand over nonsense: the error keeps no wait, so the
    # executor's default backoff applies instead of int(inf * 1000) raising in the worker.
    assert RateLimited(retry_after=wait).retry_after is None
    assert ProviderError("x", retry_after=wait).retry_after is None
    assert RateLimited(retry_after=12.5).retry_after == 12.5


@pytest.mark.parametrize("status", [403, 503])
def test_a_rate_limit_answered_with_another_status_is_deferred_not_failed(status: int) -> None:
    """GitHub's primary rate limit and Google's quota errors are 403s coded ``rate_limited``: they wait, they do not
    fail the run (before, only a 429 or a ``RateLimited`` was deferred)."""
    limited = ProviderError("rate limited", provider_status=status, code="rate_limited", retry_after=42)
    assert rate_limit_delay(limited) == 42.0
    assert rate_limit_delay(ProviderError("forbidden", provider_status=403, code="unauthorized")) is None
    assert rate_limit_delay(ProviderError("slow", provider_status=429)) == 60.0
