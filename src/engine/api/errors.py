"""One error envelope for every failure: ``{"error": {"code": ..., "message": ...}}``.

Unexpected exceptions become ``internal_error`` with a generic message: their text may hold anything, so it is
logged by type only and never returned.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.errors import TetherError

log = logging.getLogger("tether.api")

SCIM_PREFIX = "/v1/scim/"
SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
_UNPARSABLE_BODY = "There was an error parsing the body"
_STATUS_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


class ErrorBody(BaseModel):
    code: str
    message: str
    #: ``upgrade_required`` only: POST it (a connect body) to start the flow asking for the write scopes.
    upgrade_url: str | None = None
    #: ``upgrade_required`` only: the write tier's scopes the grant lacks.
    missing_scopes: list[str] | None = None
    #: ``upgrade_required`` for a product-gated operation only: the product to upgrade to (``POST upgrade_url``
    #: with ``{"product": ...}``).
    product: str | None = None
    #: ``credential_invalid`` only: ``[{"field": ..., "message": ...}]``, which field is wrong and how (no values).
    fields: list[dict[str, str]] | None = None


class ErrorEnvelope(BaseModel):
    error: ErrorBody


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TetherError)
    async def _tether(_: Request, exc: TetherError) -> JSONResponse:
        response = error_response(exc.status, exc.code, exc.message)
        details = getattr(exc, "details", None)
        if callable(details):  # fields an error adds beside code and message (``upgrade_required``'s upgrade_url)
            body = {"error": {**details(), "code": exc.code, "message": exc.message}}
            response = JSONResponse(body, status_code=exc.status)
        return response

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == _UNPARSABLE_BODY:
            # FastAPI's answer when decoding a JSON body raised something other than a JSON syntax error: nesting
            # past the recursion limit, bytes that are neither UTF-8 nor UTF-16/32. Still a body that is not JSON.
            return error_response(400, "invalid_json", "the request body is not valid JSON")
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        if request.scope.get("path", "").startswith(SCIM_PREFIX):
            # No SCIM route matched (an unknown resource path, a method it does not serve): an identity provider
            # still reads a SCIM Error body, as from every SCIM route.
            document = {"schemas": [SCIM_ERROR], "status": str(exc.status_code), "detail": message}
            return JSONResponse(document, status_code=exc.status_code, media_type="application/scim+json")
        return error_response(exc.status_code, code, message)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        if first.get("type") == "json_invalid":
            return error_response(400, "invalid_json", "the request body is not valid JSON")
        if first.get("type") == "missing":
            return error_response(400, "missing_field", f"missing field: {where}")
        if first.get("type") == "extra_forbidden":
            return error_response(422, "invalid_input", f"unknown field: {where}")
        return error_response(422, "invalid_input", f"invalid value at {where or 'body'}: {first.get('msg', '')}")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled %s", type(exc).__name__)
        return error_response(500, "internal_error", "internal error")
