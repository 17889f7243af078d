"""The provider-style answers of the sandbox's API and OAuth endpoints: ``{"error": "<code>", "message": …}``.

The sandbox plays a SaaS provider, so its API and token endpoints answer as one does (RFC 6749 §5.2, RFC 6750 §3),
not with Tether's own envelope; its controls and page are Tether's and answer with Tether's envelope. The codes
are listed in ``docs/errors.md`` (section "Sandbox provider"). ``ProviderRoute`` turns every failure of a route
into such an answer, including FastAPI's own validation errors, so no input gives a 5xx.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from engine.errors import TetherError

log = logging.getLogger("tether.sandbox")

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class Answer(Exception):
    """An error answer of the provider: status, code, message and headers (``WWW-Authenticate``, ``Retry-After``)."""

    def __init__(self, status: int, error: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"error": self.error, "message": self.message}
        if self.error not in ("invalid_token", "rate_limited", "server_error", "not_found", "insufficient_scope"):
            body["error_description"] = self.message  # the RFC 6749 name, for OAuth client libraries
        return JSONResponse(body, status_code=self.status, headers={**NO_STORE, **self.headers})


def bad_request(message: str) -> Answer:
    return Answer(400, "invalid_request", message)


class ProviderRoute(APIRoute):
    """Every failure of a provider route becomes an :class:`Answer`: never Tether's envelope, never a 5xx."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except Answer as answer:
                return answer.response()
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(p) for p in first.get("loc", ()))
                return bad_request(f"invalid value at {where or 'request'}").response()
            except TetherError as exc:
                if exc.status >= 500:
                    raise
                return Answer(exc.status, exc.code, exc.message).response()

        return run
