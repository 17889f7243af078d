"""AWS calls from async operations: boto3 runs in a worker thread, and its errors become typed errors.

boto3 is synchronous, so each call goes through ``anyio.to_thread`` and never blocks the event loop. AWS reports
errors as a code in the response (``ThrottlingException``, ``AccessDeniedException``…), not only as an HTTP
status; ``translate`` maps the codes to Tether's stable ones. The AWS message is never copied: it can name
account IDs and ARNs from the request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any, TypeVar

import anyio
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from botocore.parsers import ResponseParserError

from definitions.aws_security_hub.transport import last_answer
from engine import ProviderError
from engine.kit.providerkit import RateLimited, TransientProviderError, retry_after_seconds

T = TypeVar("T")

#: Every code AWS uses for "slow down" across the services we call.
THROTTLING = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "TooManyRequestsException",
    "RequestLimitExceeded", "RequestThrottled", "RequestThrottledException", "SlowDown", "LimitExceededException",
})
#: Codes that mean the credential (or the role's trust) is wrong, not the request.
UNAUTHORIZED = frozenset({
    "AccessDenied", "AccessDeniedException", "UnrecognizedClientException", "InvalidClientTokenId",
    "ExpiredToken", "ExpiredTokenException", "SignatureDoesNotMatch", "AuthFailure", "InvalidAccessKeyId",
    "UnauthorizedOperation", "MissingAuthenticationToken",
})
#: A guard against a broken token chain: 10 000 pages is a million records at the usual page size.
MAX_PAGES = 10_000
#: AWS sends no ``Retry-After``; its SDK guidance is exponential backoff from about a second. The queue defers
#: the run by this much (it has its own backoff on repeats).
DEFAULT_RETRY_AFTER = 5.0


async def call(fn: Callable[..., T], /, **params: Any) -> T:
    """Run one boto3 call in a worker thread; AWS errors come out as ``ProviderError``s."""
    name = getattr(fn, "__name__", "call")

    def run() -> T:
        last_answer.status, last_answer.headers = None, {}
        try:
            return fn(**params)
        except ResponseParserError:
            # An answer not in the protocol's XML or JSON (a gateway's error page): botocore cannot read a code
            # from it, so its HTTP status says what it was, as for any provider. The body (quoted by botocore's
            # message) is never kept.
            meta = {"HTTPStatusCode": last_answer.status, "HTTPHeaders": last_answer.headers}
            raise ClientError({"Error": {"Code": ""}, "ResponseMetadata": meta}, name) from None

    try:
        return await anyio.to_thread.run_sync(run)
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, name) from None


async def paginate(fn: Callable[..., Any], items: str, *, token: str = "NextToken",
                   **params: Any) -> AsyncIterator[Any]:
    """Every entry of ``items`` over all pages of ``fn``, following ``token`` until a page has none.

    Security Hub spells the token ``NextToken``, Audit Manager ``nextToken``. A token that comes back twice would
    loop forever, so it stops the run instead; so does a chain longer than ``MAX_PAGES``.
    """
    meta = getattr(getattr(fn, "__self__", None), "meta", None)
    service = str(meta.service_model.service_id) if meta is not None else "AWS"
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        page = await call(fn, **params)
        for item in page.get(items) or []:
            yield item
        next_token = page.get(token)
        if not next_token:
            return
        if next_token in seen:
            raise ProviderError(f"{service} pagination repeated a {token}")
        seen.add(next_token)
        params[token] = next_token
    raise ProviderError(f"{service} pagination stopped after {MAX_PAGES} pages")


def jsonable(value: Any) -> Any:
    """A boto3 answer as JSON types: botocore parses timestamps into ``datetime``s, ingest expects ISO strings."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [jsonable(item) for item in value]
    return value


def translate(exc: Exception, operation: str) -> ProviderError:
    """The typed error for one botocore exception; the AWS message never enters it."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        meta = exc.response.get("ResponseMetadata", {})
        status = meta.get("HTTPStatusCode")
        if code in THROTTLING or status == 429:
            retry_after = retry_after_seconds(meta.get("HTTPHeaders") or {}) or DEFAULT_RETRY_AFTER
            return RateLimited(f"AWS is throttling {operation} ({code or status})", retry_after=retry_after)
        if code == "InvalidAccessException":
            # Security Hub answers this (HTTP 401) when it is not enabled in the account and region: the
            # credential is fine, the customer has to enable the service.
            return ProviderError(f"Security Hub is not enabled in this account and region ({operation})",
                                 provider_status=status, code="not_enabled")
        if code in UNAUTHORIZED or status in (401, 403):
            return ProviderError(f"AWS refused the credential for {operation} ({code or status})",
                                 provider_status=status, code="unauthorized")
        if isinstance(status, int) and status >= 500:
            return TransientProviderError(f"AWS answered HTTP {status} to {operation}", provider_status=status)
        return ProviderError(f"AWS answered {code or status} to {operation}", provider_status=status)
    if isinstance(exc, NoCredentialsError):
        return ProviderError("no AWS credentials are available to Tether", code="unauthorized")
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError):
        return TransientProviderError(f"AWS could not be reached for {operation}")
    return ProviderError(f"the AWS SDK failed on {operation} ({type(exc).__name__})")
