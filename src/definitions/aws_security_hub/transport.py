"""boto3's HTTP exchanges go through Tether's egress client, so AWS calls have the guard every provider call has.

botocore sends with its own urllib3 pool, whose timeouts bound each socket read: an endpoint that answers a byte
at a time holds a worker thread indefinitely. Its ``before-send`` event lets a handler answer a request instead
(moto's mocks use it); :class:`EgressSender` answers by sending the signed request with an egress client: one
total deadline for the exchange, the response size cap, and the same address checks (loopback only where
``TETHER_ALLOW_LOOPBACK_PROVIDERS=1``, as for every definition).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.exceptions import EndpointConnectionError

from engine.kit.egress import DeadlineExceeded, egress_sync_client

#: The total bound of one AWS exchange, connect to last byte (botocore's read timeout was 30 s per read).
TOTAL_SECONDS = 30.0
#: httpx decodes gzip itself; what botocore is handed is the decoded body, so these would describe another one.
_DECODED_AWAY = frozenset({"content-encoding", "content-length", "transfer-encoding"})
#: The status and headers of the last answer this thread was handed (botocore sends and parses in the calling
#: thread): ``aws.call`` classifies an answer botocore could not parse by them.
last_answer = threading.local()


class _Body:
    """The ``raw`` of an :class:`AWSResponse`: botocore reads it with ``stream()``."""

    def __init__(self, content: bytes) -> None:
        self._content = content

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._content


class EgressSender:
    """A ``before-send`` handler for boto3 clients; one egress client (and its pool) serves all of them."""

    def __init__(self, *, timeout: float | None = None) -> None:
        self._client = egress_sync_client(timeout=timeout or TOTAL_SECONDS, follow_redirects=False)

    def attach(self, boto_client: Any) -> Any:
        boto_client.meta.events.register("before-send", self)
        return boto_client

    def __call__(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        body = request.body.read() if hasattr(request.body, "read") else request.body
        headers = {name: value.decode() if isinstance(value, bytes) else value
                   for name, value in request.headers.items()}
        try:
            response = self._client.request(request.method, request.url, headers=headers, content=body)
        except DeadlineExceeded:
            raise  # a Tether error that says its bound; botocore passes it through as it is
        except httpx.TransportError:
            # The request (which carries the signature) is not kept.
            raise EndpointConnectionError(endpoint_url=request.url.split("?", 1)[0]) from None
        kept = [(name, value) for name, value in response.headers.items() if name.lower() not in _DECODED_AWAY]
        last_answer.status, last_answer.headers = response.status_code, dict(kept)
        return AWSResponse(request.url, response.status_code, dict(kept), _Body(response.content))

    def close(self) -> None:
        self._client.close()
