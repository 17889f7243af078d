"""SCIM 2.0 service provider endpoints (RFC 7644), one base URL per integration: ``/v1/scim/{token}/v2``.

``{token}`` is the public token of the integration's ``scim`` endpoint row; ``Authorization: Bearer <secret>`` must
equal the row's sealed secret (constant-time, ``engine.webhooks.verification.verify_bearer``). An unknown token and a
wrong bearer both answer 401, so a token's existence does not leak. Every answer is ``application/scim+json``; errors
are SCIM Error bodies. Resources are stored by ``engine.scim.store`` (directory models, through ingest).

Routes: ``/Users`` and ``/Groups`` (GET list with ``filter``/``startIndex``/``count``/``attributes``/
``excludedAttributes``, POST create, ``POST /.search``), ``/{Users,Groups}/{id}`` (GET, PUT, PATCH, DELETE), and
``/ServiceProviderConfig``, ``/ResourceTypes[/{id}]``, ``/Schemas[/{id}]`` (GET; other methods 405).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import anyio.to_thread
import re2
from fastapi import APIRouter, Depends, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel

from engine.api.bodies import RequestBody
from engine.api.fields import IntegrationName, OwnerId
from engine.api.principal import Principal, current_principal
from engine.errors import NotFoundError, TetherError
from engine.kit.inputs import ascii_int
from engine.runtime import Runtime
from engine.scim import discovery
from engine.scim.protocol import (
    GROUP_SCHEMA,
    LIST_SCHEMA,
    PATCH_SCHEMA,
    READ_ONLY,
    USER_SCHEMA,
    ScimError,
    apply_patch,
    bad_request,
    clean,
    get_attr,
    parse_filter,
    project,
)
from engine.scim.store import Store, now_text, version_of
from engine.webhooks.targets import load_target
from engine.webhooks.verification import BearerToken, InvalidSignature, lower_headers, verify_bearer

log = logging.getLogger("tether.scim")

MEDIA_TYPE = "application/scim+json"
PREFIX = "/v1/scim/{token}/v2"
DEFAULT_COUNT = 100
_TOKEN = re2.compile(r"[A-Za-z0-9_-]{16,64}")  # RE2: the token any caller sends (ASCII-only)


class ScimResponse(Response):
    media_type = MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()


def _error_response(error: ScimError) -> ScimResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="scim"'} if error.status == 401 else None
    return ScimResponse(error.body(), status_code=error.status, headers=headers)


class ScimRoute(APIRoute):
    """Turns every failure of a SCIM route into a SCIM Error body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except ScimError as exc:
                return _error_response(exc)
            except TetherError as exc:
                return _error_response(ScimError(exc.status, exc.message))

        return run


class ScimErrorBody(BaseModel):
    """RFC 7644 §3.12 error body, what every SCIM route answers on failure (instead of Tether's envelope)."""

    schemas: list[str]
    status: str
    detail: str | None = None
    scimType: str | None = None


_SCIM_ERRORS: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ScimErrorBody, "content": {MEDIA_TYPE: {}}},
    "5XX": {"model": ScimErrorBody, "content": {MEDIA_TYPE: {}}},
}
router = APIRouter(
    prefix=PREFIX, tags=["scim"], route_class=ScimRoute, default_response_class=ScimResponse, responses=_SCIM_ERRORS
)


# -- authentication and request plumbing -----------------------------------------------------------------------


async def _store(request: Request, token: str) -> Store:
    runtime: Runtime = request.app.state.runtime
    if not (token.isascii() and _TOKEN.fullmatch(token)):
        raise ScimError(401, "unknown endpoint or wrong bearer token")
    try:
        target = await anyio.to_thread.run_sync(load_target, runtime, token)
    except NotFoundError:
        raise ScimError(401, "unknown endpoint or wrong bearer token") from None
    if not isinstance(target.webhook.verifier, BearerToken) or target.webhook.name != "scim":
        raise ScimError(401, "unknown endpoint or wrong bearer token")
    try:
        verify_bearer(lower_headers(request.headers.items()), target.secrets)
    except InvalidSignature:
        raise ScimError(401, "unknown endpoint or wrong bearer token") from None
    return Store(runtime, target.tenant_id, target.integration_id, target.definition_id)


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except (ValueError, RecursionError):
        raise bad_request("the body is not JSON", "invalidSyntax") from None
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object", "invalidSyntax")
    return body


def _base(request: Request, token: str) -> str:
    return str(request.base_url).rstrip("/") + PREFIX.format(token=token)


def _int(value: Any, name: str, default: int) -> int:
    """A paging number from the query or a ``.search`` body: a JSON integer or ASCII digits (``int()`` would also
    take ``'٣'``, ``' 1_0 '`` and, from JSON, a bool or ``1.5``)."""
    if value is None or value == "":
        return default
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    text = value.strip() if isinstance(value, str) else ""
    number = ascii_int(text.removeprefix("-"))
    if number is None:
        raise bad_request(f"{name} must be an integer")
    return -number if text.startswith("-") else number


KINDS: dict[str, dict[str, Any]] = {
    "Users": {"schema": USER_SCHEMA, "type": "User", "key": "userName"},
    "Groups": {"schema": GROUP_SCHEMA, "type": "Group", "key": "displayName"},
}
_SCHEMAS = (USER_SCHEMA, GROUP_SCHEMA)


def _located(resource: dict[str, Any], kind: str, base: str) -> dict[str, Any]:
    meta = dict(resource.get("meta") or {})
    meta["location"] = f"{base}/{kind}/{resource['id']}"
    out = {**resource, "meta": meta}
    for attr, target in (("members", "Users"), ("groups", "Groups")):
        if isinstance(out.get(attr), list):
            out[attr] = [{**m, "$ref": f"{base}/{target}/{m['value']}"} for m in out[attr] if isinstance(m, dict)]
    return out


def _out(resource: dict[str, Any], kind: str, base: str, attributes: str | None, excluded: str | None) -> Any:
    return project(_located(resource, kind, base), attributes, excluded, _SCHEMAS)


# -- resource logic --------------------------------------------------------------------------------------------


def _prepare(kind: str, body: dict[str, Any], resource_id: str, previous: dict[str, Any] | None) -> dict[str, Any]:
    """A client's representation → the stored resource: read-only attributes dropped, id and meta ours."""
    info = KINDS[kind]
    resource: dict[str, Any] = {}
    for name, value in body.items():
        if name.lower() in READ_ONLY or name.lower() == "schemas":
            continue
        if name.lower().startswith("urn:") and not isinstance(value, dict):
            continue
        resource[name] = value
    resource = clean(resource)
    if kind == "Users" and "active" in resource and isinstance(resource["active"], str):
        resource["active"] = resource["active"].strip().lower() == "true"  # Entra ID sends "True"/"False"
    resource.pop("password", None)
    key = get_attr(resource, info["key"])
    if not isinstance(key, str) or not key.strip():
        raise bad_request(f"{info['key']} is required", "invalidValue")
    if kind == "Groups":
        for member in resource.get("members") or []:
            if not isinstance(member, dict) or not member.get("value"):
                raise bad_request("each member needs a value", "invalidValue")
            if str(member.get("type", "User")).lower() not in ("user", ""):
                raise bad_request("only Users can be members (nested groups are not supported)", "invalidValue")
        resource["members"] = [
            {"value": str(m["value"]), **({"display": m["display"]} if isinstance(m.get("display"), str) else {})}
            for m in resource.get("members") or []
        ]
    now = now_text()
    created = (previous or {}).get("meta", {}).get("created", now)
    resource = {"schemas": [info["schema"]], "id": resource_id, **resource}
    resource["meta"] = {"resourceType": info["type"], "created": created, "lastModified": now}
    resource["meta"]["version"] = version_of(resource)
    return resource


def _save(store: Store, kind: str, resource: dict[str, Any]) -> dict[str, Any]:
    if kind == "Users":
        if store.username_taken(resource["userName"], resource["id"]):
            raise ScimError(409, f"userName {resource['userName']!r} is already taken", "uniqueness")
        store.save_user(resource)
        return store.user(resource["id"])
    store.save_group(resource)
    return store.group(resource["id"])


def _all(store: Store, kind: str) -> list[dict[str, Any]]:
    return store.users() if kind == "Users" else store.groups()


def _one(store: Store, kind: str, resource_id: str) -> dict[str, Any]:
    return store.user(resource_id) if kind == "Users" else store.group(resource_id)


def _list(store: Store, kind: str, params: dict[str, Any], base: str) -> dict[str, Any]:
    text = params.get("filter")
    predicate = parse_filter(str(text)) if text else None
    start = max(_int(params.get("startIndex"), "startIndex", 1), 1)
    count = min(max(_int(params.get("count"), "count", DEFAULT_COUNT), 0), discovery.MAX_RESULTS)
    matched = [r for r in _all(store, kind) if predicate is None or predicate(r)]
    page = matched[start - 1 : start - 1 + count]
    attributes = _attribute_names(params.get("attributes"), "attributes")
    excluded = _attribute_names(params.get("excludedAttributes"), "excludedAttributes")
    return {
        "schemas": [LIST_SCHEMA],
        "totalResults": len(matched),
        "startIndex": start,
        "itemsPerPage": len(page),
        "Resources": [_out(r, kind, base, attributes, excluded) for r in page],
    }


def _attribute_names(value: Any, name: str) -> str | None:
    """``attributes``/``excludedAttributes``: a comma-separated string (query) or a list of strings (``.search``
    body); a JSON number, object or a list holding one is refused, not joined."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return ",".join(value)
    raise bad_request(f"{name} must be a string or a list of strings")


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ScimError(404, f"no resource type at /{kind}")


# -- discovery -------------------------------------------------------------------------------------------------

_NOT_ALLOWED = ["POST", "PUT", "PATCH", "DELETE"]


@router.get("/ServiceProviderConfig")
async def service_provider_config(token: str, request: Request) -> ScimResponse:
    await _store(request, token)
    return ScimResponse(discovery.service_provider_config(_base(request, token)))


def _listing(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schemas": [LIST_SCHEMA],
        "totalResults": len(resources),
        "startIndex": 1,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


@router.get("/ResourceTypes")
async def resource_types(token: str, request: Request) -> ScimResponse:
    await _store(request, token)
    return ScimResponse(_listing(discovery.resource_types(_base(request, token))))


@router.get("/ResourceTypes/{type_id}")
async def resource_type(token: str, type_id: str, request: Request) -> ScimResponse:
    await _store(request, token)
    found = next((r for r in discovery.resource_types(_base(request, token)) if r["id"] == type_id), None)
    if found is None:
        raise ScimError(404, f"no resource type {type_id}")
    return ScimResponse(found)


@router.get("/Schemas")
async def schemas(token: str, request: Request) -> ScimResponse:
    await _store(request, token)
    return ScimResponse(_listing(discovery.schema_documents(_base(request, token))))


@router.get("/Schemas/{schema_id}")
async def schema(token: str, schema_id: str, request: Request) -> ScimResponse:
    await _store(request, token)
    found = next((s for s in discovery.schema_documents(_base(request, token)) if s["id"] == schema_id), None)
    if found is None:
        raise ScimError(404, f"no schema {schema_id}")
    return ScimResponse(found)


@router.api_route("/ServiceProviderConfig", methods=_NOT_ALLOWED, include_in_schema=False)
@router.api_route("/ResourceTypes", methods=_NOT_ALLOWED, include_in_schema=False)
@router.api_route("/ResourceTypes/{type_id}", methods=_NOT_ALLOWED, include_in_schema=False)
@router.api_route("/Schemas", methods=_NOT_ALLOWED, include_in_schema=False)
@router.api_route("/Schemas/{schema_id}", methods=_NOT_ALLOWED, include_in_schema=False)
async def discovery_not_allowed(token: str, request: Request) -> ScimResponse:
    await _store(request, token)
    raise ScimError(405, "discovery documents are read-only")


# -- resources -------------------------------------------------------------------------------------------------


@router.get("/{kind}")
async def list_resources(token: str, kind: str, request: Request) -> ScimResponse:
    store = await _store(request, token)
    _check_kind(kind)
    params = dict(request.query_params)
    body = await anyio.to_thread.run_sync(_list, store, kind, params, _base(request, token))
    return ScimResponse(body)


@router.post("/.search")
async def search_everything(token: str, request: Request) -> ScimResponse:
    store = await _store(request, token)
    params = await _json(request)
    base = _base(request, token)
    unpaged = {**params, "startIndex": 1, "count": discovery.MAX_RESULTS}
    users = await anyio.to_thread.run_sync(_list, store, "Users", unpaged, base)
    groups = await anyio.to_thread.run_sync(_list, store, "Groups", unpaged, base)
    resources = users["Resources"] + groups["Resources"]
    start = max(_int(params.get("startIndex"), "startIndex", 1), 1)
    count = min(max(_int(params.get("count"), "count", DEFAULT_COUNT), 0), discovery.MAX_RESULTS)
    page = resources[start - 1 : start - 1 + count]
    body = {
        "schemas": [LIST_SCHEMA],
        "totalResults": len(resources),
        "startIndex": start,
        "itemsPerPage": len(page),
        "Resources": page,
    }
    return ScimResponse(body)


@router.post("/{kind}/.search")
async def search_resources(token: str, kind: str, request: Request) -> ScimResponse:
    store = await _store(request, token)
    _check_kind(kind)
    params = await _json(request)
    body = await anyio.to_thread.run_sync(_list, store, kind, params, _base(request, token))
    return ScimResponse(body)


@router.post("/{kind}", status_code=201)
async def create_resource(token: str, kind: str, request: Request) -> ScimResponse:
    store = await _store(request, token)
    _check_kind(kind)
    resource = _prepare(kind, await _json(request), str(uuid.uuid4()), None)
    saved = await anyio.to_thread.run_sync(_save, store, kind, resource)
    base = _base(request, token)
    out = _out(
        saved, kind, base, request.query_params.get("attributes"), request.query_params.get("excludedAttributes")
    )
    return ScimResponse(out, status_code=201, headers={"Location": out["meta"]["location"]})


@router.get("/{kind}/{resource_id}")
async def get_resource(token: str, kind: str, resource_id: str, request: Request) -> ScimResponse:
    store = await _store(request, token)
    _check_kind(kind)
    found = await anyio.to_thread.run_sync(_one, store, kind, resource_id)
    q = request.query_params
    return ScimResponse(_out(found, kind, _base(request, token), q.get("attributes"), q.get("excludedAttributes")))


@router.put("/{kind}/{resource_id}")
async def replace_resource(token: str, kind: str, resource_id: str, request: Request) -> ScimResponse:
    store = await _store(request, token)
    _check_kind(kind)
    body = await _json(request)
    previous = await anyio.to_thread.run_sync(_one, store, kind, resource_id)
    resource = _prepare(kind, body, resource_id, previous)
    saved = await anyio.to_thread.run_sync(_save, store, kind, resource)
    q = request.query_params
    return ScimResponse(_out(saved, kind, _base(request, token), q.get("attributes"), q.get("excludedAttributes")))


@router.patch("/{kind}/{resource_id}")
async def patch_resource(token: str, kind: str, resource_id: str, request: Request) -> ScimResponse:
    store = await _store(request, token)
    _check_kind(kind)
    body = await _json(request)
    if PATCH_SCHEMA not in (body.get("schemas") or []):
        raise bad_request(f"a PATCH body must declare {PATCH_SCHEMA}", "invalidSyntax")
    previous = await anyio.to_thread.run_sync(_one, store, kind, resource_id)
    operations = get_attr(body, "Operations")
    patched = apply_patch(previous, operations, _SCHEMAS)
    resource = _prepare(kind, patched, resource_id, previous)
    saved = await anyio.to_thread.run_sync(_save, store, kind, resource)
    q = request.query_params
    return ScimResponse(_out(saved, kind, _base(request, token), q.get("attributes"), q.get("excludedAttributes")))


@router.delete("/{kind}/{resource_id}", status_code=204)
async def delete_resource(token: str, kind: str, resource_id: str, request: Request) -> Response:
    store = await _store(request, token)
    _check_kind(kind)
    await anyio.to_thread.run_sync(store.delete_user if kind == "Users" else store.delete_group, resource_id)
    return Response(status_code=204)


# -- connecting a SCIM integration (Tether's own JSON API, not SCIM) ---------------------------------------------

connections_router = APIRouter(prefix="/v1/scim-connections", tags=["integrations"])


class ScimConnectRequest(RequestBody):
    owner_id: OwnerId = ""
    name: IntegrationName = ""


class ScimConnectionView(BaseModel):
    integration_id: str
    base_url: str
    bearer_token: str


@connections_router.post("", response_model=ScimConnectionView)
async def connect_scim(
    body: ScimConnectRequest, request: Request, principal: Principal = Depends(current_principal)
) -> ScimConnectionView:
    """Create (or find) the owner's SCIM integration and return what the identity provider is configured with.

    Server principals only: the bearer token is the credential the identity provider presents, so, like an access
    token, it goes to the host app's server and from there to the administrator setting up provisioning.
    """
    principal.require_server()
    from engine.scim.connect import connect

    made = await connect(request.app.state.runtime, principal, owner_id=body.owner_id, name=body.name)
    return ScimConnectionView(
        integration_id=made.integration_id, base_url=made.base_url, bearer_token=made.bearer_token
    )
