"""Hostile input for every route of the app: the route list, the strategies, and one request straight on ASGI.

Shared by ``tests/fuzz/test_hostile_input.py`` (a bounded run in the suite) and ``bench/fuzz.py`` (``python -m
bench fuzz``, the same probes for longer).

- ``enumerate_routes(app)`` reads the app's router (``app.routes``), so a route added later is fuzzed without
  anyone listing it: the FastAPI routes in ``/openapi.json`` and the ones outside it (SCIM discovery methods, the
  pages, the OpenAPI document itself, ``/static``).
- ``request_for(spec, world)`` draws one request for a route: path parameters that are either real (the world's
  integration, run, webhook and SCIM tokens, so the probe reaches past the look-ups) or hostile; a query, headers
  and a body built from hostile values — NUL, lone surrogates (as JSON ``\\ud800`` escapes and as raw invalid
  UTF-8 bytes), unicode digits, huge integers, ``1e400``/``NaN``, 10,000-deep nesting, 100,000-character strings,
  raw Latin-1 bytes in the principal, authorization and signature headers — with the API key or without.
- ``send(world, request)`` runs it on the app's ASGI interface, as uvicorn would hand it over (the path
  percent-decoded, the query and headers as bytes), on the world's one event loop.
- ``problem(request, response, codes)`` says what is wrong with an answer: a 5xx, or a 4xx that is not the
  documented envelope with a code of ``docs/errors.md`` (SCIM routes: a SCIM Error body with a documented
  ``scimType``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from fastapi import FastAPI
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from pydantic import BaseModel
from sqlmodel import select
from starlette.routing import Mount, Route

from engine.catalog.registry import Registry
from engine.custody.crypto import generate_master_key
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.tables import WebhookEndpoint
from engine.webhooks.endpoints import endpoint_secret
from support.scratchdb import migrated

ROOT = Path(__file__).resolve().parents[2]
ERRORS_MD = ROOT / "docs" / "errors.md"
PRINCIPAL_KEY = "hostile-principal-key"
SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


# -- documented codes ------------------------------------------------------------------------------------------

_ROW = re.compile(r"^\|\s*`([A-Za-z_]+)`\s*\|")


def documented_codes(path: Path = ERRORS_MD) -> tuple[set[str], set[str]]:
    """(error codes, SCIM ``scimType`` values) listed in ``docs/errors.md``: the first column of its tables, the
    ones under the heading that mentions ``scimType`` being SCIM's."""
    codes: set[str] = set()
    scim_types: set[str] = set()
    target = codes
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            target = scim_types if "scimtype" in line.lower() else codes
        match = _ROW.match(line)
        if match:
            target.add(match.group(1))
    return codes, scim_types


# -- the routes --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteSpec:
    method: str
    #: The path template, ``{name}`` per path parameter (``{path}`` for a mount's file path).
    path: str
    params: tuple[str, ...]
    query: tuple[str, ...]
    #: Top-level fields of the JSON body, when the route declares a body model (or an embedded body parameter).
    body: tuple[str, ...]
    in_schema: bool

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def scim(self) -> bool:
        return self.path.startswith("/v1/scim/")


_PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")


def _body_fields(route: Any) -> tuple[str, ...]:
    body = route.body_field
    if body is None:
        return ()
    params = route.dependant.body_params
    annotation = body.field_info.annotation
    if len(params) == 1 and isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return tuple(annotation.model_fields)
    return tuple(p.alias or p.name for p in params)  # embedded body parameters (``Body(embed=True)``)


def _query_params(route: Any) -> tuple[str, ...]:
    names: list[str] = []
    stack = [route.dependant]
    while stack:  # the route's own parameters and its dependencies' (``Depends``)
        dependant = stack.pop()
        names.extend(p.alias or p.name for p in dependant.query_params)
        stack.extend(dependant.dependencies)
    return tuple(dict.fromkeys(names))


def _route_contexts(app: FastAPI) -> list[tuple[Any, Any]]:
    """(route as included — prefix applied —, the route as declared). FastAPI 0.16x keeps included routers lazy
    (``app.routes`` holds them unexpanded); ``iter_route_contexts`` expands them as the app's own routing does."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: included routes are copied into app.routes
        return [(route, route) for route in app.routes]
    return [(context, context.original_route) for context in iter_route_contexts(app.routes)]


def enumerate_routes(app: FastAPI) -> list[RouteSpec]:
    """Every (method, path) the app's router answers; ``HEAD`` is left out (Starlette answers it as ``GET``)."""
    specs: list[RouteSpec] = []
    for route, declared in _route_contexts(app):
        if isinstance(declared, APIRoute):
            for method in sorted(set(route.methods) - {"HEAD"}):
                path = route.path_format
                specs.append(
                    RouteSpec(
                        method,
                        path,
                        tuple(_PARAM.findall(path)),
                        _query_params(route),
                        _body_fields(route),
                        declared.include_in_schema,
                    )
                )
        elif isinstance(declared, Mount):
            specs.append(RouteSpec("GET", route.path + "/{path}", ("path",), (), (), False))
        elif isinstance(declared, Route):
            for method in sorted(set(route.methods or {"GET"}) - {"HEAD"}):
                path = route.path_format
                specs.append(RouteSpec(method, path, tuple(_PARAM.findall(path)), (), (), False))
        else:  # a kind of route this module does not know how to fuzz: fail loudly rather than skip it
            raise TypeError(f"unknown route type {type(declared).__name__} at {getattr(route, 'path', '?')}")
    return specs


def openapi_operations(app: FastAPI) -> set[str]:
    """``METHOD /path`` of every operation in the app's ``/openapi.json``."""
    document = app.openapi()
    return {
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }


# -- hostile values --------------------------------------------------------------------------------------------

#: Strings each of which some edge got wrong once (issue 16) or that sit on a column limit.
NASTY_TEXT: tuple[str, ...] = (
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    "\udc80\ud800",
    "²",
    "٣",
    "1²",
    "①②⑦.0.0.1",
    "https://0177.0.0.1",
    "https://①②⑦.0.0.1/x",
    "1e400",
    "NaN",
    "-Infinity",
    "9" * 5000,
    "x" * 100_000,
    "é" * 201,
    "o" * 33,
    "o" * 65,
    "o" * 101,
    "o" * 201,
    "o" * 501,
    "o" * 1001,
    "",
    " ",
    "../../etc/passwd",
    "%00",
    "\\u0000",
    "' OR 1=1 --",
    "{{7*7}}",
    "<script>alert(1)</script>",
    "\u202e\u2066",
    "😀" * 60,
    "tk_" + "A" * 43,
)

_lone_surrogate = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
_long_lengths = st.sampled_from([33, 65, 101, 201, 501, 1001, 20_000])

hostile_text: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(NASTY_TEXT),
    st.text(max_size=20),
    st.text(alphabet=st.one_of(st.characters(), _lone_surrogate), max_size=10),
    st.builds(lambda char, n: char * n, st.characters(), _long_lengths),
)

_query_text = hostile_text.filter(lambda t: len(t) < 20_000)

HUGE_NUMBERS: tuple[Any, ...] = (
    10**400,
    -(10**400),
    2**63,
    -(2**63) - 1,
    2**64,
    float("nan"),
    float("inf"),
    1e308,
    -0.0,
)

hostile_scalar: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(HUGE_NUMBERS),
    st.floats(),
    hostile_text,
)

hostile_json: st.SearchStrategy[Any] = st.recursive(
    hostile_scalar,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(hostile_text, children, max_size=4)),
    max_leaves=8,
)

DEPTH = 10_000

#: Bodies no JSON encoder would write: deep nesting, invalid UTF-8 (a lone surrogate's raw bytes), numbers past
#: every range, broken documents.
RAW_BODIES: tuple[bytes, ...] = (
    b"[" * DEPTH + b"]" * DEPTH,
    b'{"a":' * DEPTH + b"1" + b"}" * DEPTH,
    b'{"owner_id": "' + b"[" * DEPTH + b'"}',
    b'{"definition_id": "sample", "owner_id": "\xed\xa0\x80"}',
    b'{"userName": "\xed\xa0\x80", "schemas": ["' + USER_SCHEMA.encode() + b'"]}',
    b"\xff\xfe{\x00}",
    b'{"a": 1e400}',
    b'{"a": NaN, "b": -Infinity}',
    b'{"a": ' + b"9" * 5000 + b"}",
    b'{"limit": 1' + b"0" * 400 + b"}",
    b"",
    b"null",
    b"[]",
    b'"x"',
    b'{"a":1',
    b"\x00",
    b"a=%00&b=\xff",
)

#: Header values as bytes on the wire: HTTP gives them to the app as Latin-1, whatever the client meant.
HOSTILE_HEADER_VALUES: tuple[bytes, ...] = (
    b"\xff\xfe",
    "é.é".encode("latin-1"),
    "²".encode(),
    "²".encode("latin-1"),
    "٣".encode(),
    b"abc.\x80",
    b"9" * 5000,
    b"1" * 30,
    b"x" * 8000,
    b"1e400",
    b"NaN",
    b"-1",
    b" ",
    b"",
    b"sha256=" + b"\xff" * 32,
    b"t=\xb2,v1=abc",
    b"v1,\xff\xfe",
)

hostile_header_value: st.SearchStrategy[bytes] = st.one_of(
    st.sampled_from(HOSTILE_HEADER_VALUES),
    st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    hostile_text.map(lambda t: t.encode("utf-8", "surrogatepass")[:9000].replace(b"\r", b"").replace(b"\n", b"")),
)

#: Headers that verifiers, the principal boundary and body parsers read.
SENSITIVE_HEADERS: tuple[bytes, ...] = (
    b"x-tether-principal",
    b"authorization",
    b"cookie",
    b"x-tether-csrf",
    b"origin",
    b"content-type",
    b"x-sample-signature",
    b"x-sample-event",
    b"x-sample-delivery",
    b"webhook-id",
    b"webhook-timestamp",
    b"webhook-signature",
    b"x-slack-request-timestamp",
    b"x-slack-signature",
    b"x-hub-signature-256",
    b"x-github-event",
    b"x-github-delivery",
    b"stripe-signature",
)

SCIM_FIELDS = ("userName", "displayName", "externalId", "name", "emails", "members", "active", "title", "groups")
SCIM_QUERY = ("filter", "startIndex", "count", "attributes", "excludedAttributes")
#: Query names any route might read without declaring them (the OAuth callback reads its whole query).
LOOSE_QUERY = ("state", "code", "error", "flow", "session", "cursor", "next", "tether_result", "q")


# -- the world: what real path parameters point at ---------------------------------------------------------------


@dataclass
class World:
    """A running app with something to find behind each kind of path parameter."""

    app: FastAPI
    runtime: Runtime
    loop: asyncio.AbstractEventLoop
    api_key: str
    user_key: str
    integration_id: str
    run_id: str
    webhook_token: str
    webhook_secret: str
    scim_token: str
    scim_bearer: str
    scim_user_id: str
    routes: list[RouteSpec] = field(default_factory=list)
    #: ``flow`` and ``session`` of a started OAuth flow (the ``redirect_url`` of a connect call).
    flow: dict[str, str] = field(default_factory=dict)
    #: Whether the development login (browser session cookies) is on: on SQLite worlds, off on PostgreSQL ones.
    dev_login: bool = False

    def query_pool(self, name: str) -> list[str]:
        """Real values for a query parameter of this name."""
        return {
            "flow": [self.flow.get("flow", "")],
            "session": [self.flow.get("session", "")],
            "status": ["received", "failed"],
            "limit": ["1", "500"],
            "count": ["1"],
            "startIndex": ["1"],
            "filter": ['userName eq "ada"', "userName pr"],
            "integration_id": [self.integration_id],
            "owner_id": ["o1"],
            "definition_id": ["sample", "scim"],
            "updated_since": ["2026-01-01T00:00:00Z", "2026-01-01T00:00:00.5+05:30"],
        }.get(name, [])

    def pool(self, name: str) -> list[str]:
        """Real values for a path parameter of this name."""
        return {
            "integration_id": [self.integration_id],
            "run_id": [self.run_id],
            "slot": ["ApiToken", "OAuthGrant"],
            "operation": ["HealthCheck", "ItemSync"],
            "token": [self.webhook_token, self.scim_token],
            "definition_id": ["sample", "scim", "github_app", "slack"],
            "webhook_name": ["sample.events", "scim", "app", "events"],
            "kind": ["Users", "Groups"],
            "resource_id": [self.scim_user_id],
            "type_id": ["User", "Group"],
            "schema_id": [USER_SCHEMA],
            "path": ["tether.js"],
            "schema": ["asset", "directory_account", "directory_group"],
            "record_id": ["1", "2"],
        }.get(name, [])


def _registry() -> Registry:
    from definitions.github_app import definition as github_definition
    from definitions.slack import definition as slack_definition
    from engine.scim import definition as scim_definition
    from support import sample_definition

    registry = Registry()
    for definition in (sample_definition.definition, scim_definition, github_definition, slack_definition):
        registry.register(definition)
    return registry


#: (definition, webhook) of the app-wide webhooks the world serves.
STATIC_WEBHOOKS = (("github_app", "app"), ("slack", "events"))
#: Operator config of the definitions whose app-wide (static) webhooks the probes sign.
STATIC_WEBHOOK_SECRET = "static-webhook-secret"
_OPERATOR_ENV = {
    "TETHER_SAMPLE_CLIENT_ID": "sample-client",
    "TETHER_SECRET_SAMPLE_CLIENT_SECRET": "sample-secret",
    "TETHER_GITHUB_APP_APP_ID": "12345",
    "TETHER_GITHUB_APP_APP_SLUG": "tether-fuzz",
    "TETHER_SECRET_GITHUB_APP_PRIVATE_KEY": "unused by webhooks",
    "TETHER_SECRET_GITHUB_APP_WEBHOOK_SECRET": STATIC_WEBHOOK_SECRET,
    "TETHER_SLACK_CLIENT_ID": "slack-client",
    "TETHER_SECRET_SLACK_CLIENT_SECRET": "slack-secret",
    "TETHER_SECRET_SLACK_SIGNING_SECRET": STATIC_WEBHOOK_SECRET,
}


@contextmanager
def world(database_url: str, state_dir: Path) -> Iterator[World]:
    """Start the app on ``database_url`` (migrated) and make the things real path parameters point at."""
    import os

    from engine.api import create_app
    from engine.api.principal import Principal, create_api_key
    from engine.scim.connect import connect

    names = (*_OPERATOR_ENV, "TETHER_SECRET_MASTER_KEY", "TETHER_DEV_LOGIN")
    saved = {k: os.environ.get(k) for k in names}
    dev_login = database_url.startswith("sqlite")
    os.environ.update(
        _OPERATOR_ENV,
        TETHER_SECRET_MASTER_KEY=generate_master_key(),
        TETHER_DEV_LOGIN="1" if dev_login else "0",
    )
    settings = Settings(
        database_url=database_url,
        secret_principal_key=PRINCIPAL_KEY,  # type: ignore[arg-type]
        state_dir=str(state_dir),
        public_url="http://tether.test",
    )
    runtime = migrated(Runtime.start(settings, registry=_registry()))
    loop = asyncio.new_event_loop()
    try:
        app = create_app(runtime)
        api_key, _ = create_api_key(runtime.db, tenant="t1", role="server")
        user_key, _ = create_api_key(runtime.db, tenant="t1", role="user", owner="o1")
        scim = loop.run_until_complete(connect(runtime, Principal(tenant_id="t1", role="server"), owner_id="o1"))
        made = World(app, runtime, loop, api_key, user_key, "", "", "", "", scim.token, scim.bearer_token, "")
        made.integration_id = _setup_integration(made)
        made.scim_user_id = _scim_user(made)
        made.dev_login = dev_login
        redirect = _json_call(made, "POST", f"/v1/integrations/{made.integration_id}/connect", {"connection": "OAuth"})
        made.flow = {k: v[0] for k, v in parse_qs(urlsplit(redirect["redirect_url"]).query).items()}
        made.routes = enumerate_routes(app)
        yield made
    finally:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=10))
        loop.close()
        runtime.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _json_call(
    made: World, method: str, path: str, body: Any = None, headers: list[tuple[bytes, bytes]] | None = None
) -> Any:
    given = dict(headers or [])
    given.setdefault(b"authorization", f"Bearer {made.api_key}".encode())
    given.setdefault(b"content-type", b"application/json")
    request = Request(
        method, path.encode(), b"", list(given.items()), json.dumps(body).encode() if body is not None else b""
    )
    response = send(made, request)
    if response.status >= 300:
        raise RuntimeError(f"setting up the fuzz world: {method} {path} answered {response.status}: {response.body!r}")
    return json.loads(response.body) if response.body else None


def _setup_integration(made: World) -> str:
    """A connected ``sample`` integration (typed-in API token), its webhook endpoint and one run."""
    created = _json_call(made, "POST", "/v1/integrations", {"definition_id": "sample", "owner_id": "o1"})
    integration_id: str = created["id"]
    _json_call(made, "POST", f"/v1/integrations/{integration_id}/credentials/ApiToken", {"token": "t0ken"})
    done = _json_call(made, "POST", f"/v1/integrations/{integration_id}/operations/HealthCheck", {})
    made.run_id = done["run"]["id"]
    with made.runtime.db.session() as session:
        endpoint = session.exec(
            select(WebhookEndpoint).where(
                WebhookEndpoint.integration_id == integration_id, WebhookEndpoint.webhook == "sample.events"
            )
        ).one()
    made.webhook_token = endpoint.token
    made.webhook_secret = endpoint_secret(made.runtime, endpoint) or ""
    return integration_id


def _scim_user(made: World) -> str:
    path = f"/v1/scim/{made.scim_token}/v2/Users"
    created = _json_call(
        made,
        "POST",
        path,
        {"schemas": [USER_SCHEMA], "userName": f"ada-{uuid.uuid4().hex[:8]}"},
        headers=[(b"authorization", f"Bearer {made.scim_bearer}".encode())],
    )
    return str(created["id"])


def restore(made: World) -> None:
    """After a probe that may have deleted or disconnected the world's integration (or its SCIM user): make it
    connected again, so that later probes still reach past the look-ups."""
    user = send(
        made,
        Request(
            "GET",
            f"/v1/scim/{made.scim_token}/v2/Users/{made.scim_user_id}".encode(),
            b"",
            [(b"authorization", f"Bearer {made.scim_bearer}".encode())],
            b"",
        ),
    )
    if user.status == 404:
        made.scim_user_id = _scim_user(made)
    status = send(
        made,
        Request(
            "GET",
            f"/v1/integrations/{made.integration_id}".encode(),
            b"",
            [(b"authorization", f"Bearer {made.api_key}".encode())],
            b"",
        ),
    )
    if status.status == 200 and json.loads(status.body)["status"] == "connected":
        return
    if status.status == 404:
        made.integration_id = _setup_integration(made)
        return
    _json_call(made, "POST", f"/v1/integrations/{made.integration_id}/credentials/ApiToken", {"token": "t0ken"})


# -- requests ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    #: Percent-encoded, as on the request line.
    raw_path: bytes
    query: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def describe(self, limit: int = 300) -> str:
        text = f"{self.method} {self.raw_path[:limit]!r}?{self.query[:limit]!r} headers={self.headers!r}"[: limit * 3]
        return f"{text} body[{len(self.body)}]={self.body[:limit]!r}"


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[bytes, bytes]
    body: bytes


def _segment(text: str) -> str:
    """A path segment as a client would put it on the request line (UTF-8, percent-encoded; a lone surrogate as the
    bytes it would have been)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def _query_bytes(pairs: list[tuple[str, str]]) -> bytes:
    return "&".join(f"{_segment(k)}={_segment(v)}" for k, v in pairs).encode("ascii")


def _encode_json(value: Any, ensure_ascii: bool) -> bytes:
    # ``ensure_ascii``: a lone surrogate goes out as its ``\ud800`` escape; else as raw (invalid) UTF-8 bytes.
    return json.dumps(value, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")


def _field_value(name: str, world: World) -> st.SearchStrategy[Any]:
    real: dict[str, list[Any]] = {
        "definition_id": ["sample", "scim"],
        "connection": ["ApiKey", "OAuth"],
        "return_url": ["https://app.example/settings", "http://tether.test/integrations"],
        "owner_id": ["o1", "o2"],
        "token": ["t0ken"],
        "config": [{}],
        "user_input": [{"project": "p"}],
        "filter_expr": ['payload.kind == "item"', "payload.name.size() > 2"],
    }
    # Text most of the time: over-long and unstorable strings in real fields are what reaches the store.
    return st.one_of(st.sampled_from(real.get(name, [""])), hostile_text, hostile_text, hostile_json)


@st.composite
def _body(draw: st.DrawFn, spec: RouteSpec, world: World) -> bytes:
    choice = draw(st.sampled_from(["fields", "fields", "fields", "json", "raw"]))
    if choice == "raw":
        return draw(st.sampled_from(RAW_BODIES))
    ensure_ascii = draw(st.booleans())
    if spec.path.startswith("/v1/webhooks/") and choice == "fields":
        # Shaped like what the webhooks read (Slack's envelope, GitHub's installation), with hostile values.
        shaped = draw(
            st.sampled_from(
                [
                    lambda v: {"type": "event_callback", "team_id": v, "event_id": v, "event": {"type": v, "user": v}},
                    lambda v: {"type": "url_verification", "challenge": v},
                    lambda v: {"installation": {"id": v}, "action": v, "repository": v},
                    lambda v: {"kind": "item", "id": v, "name": v},
                ]
            )
        )
        return _encode_json(shaped(draw(hostile_json)), ensure_ascii)
    if choice == "json":
        return _encode_json(draw(hostile_json), ensure_ascii)
    names = SCIM_FIELDS if spec.scim else spec.body or ("name", "owner_id", "token")
    document: dict[str, Any] = {}
    for name in names:
        if draw(st.integers(0, 3)):
            document[name] = draw(_field_value(name, world))
    if spec.scim:
        document["schemas"] = [PATCH_SCHEMA] if spec.method == "PATCH" else [USER_SCHEMA]
        if spec.method == "PATCH":
            document["Operations"] = draw(
                st.lists(
                    st.fixed_dictionaries(
                        {"op": st.sampled_from(["add", "replace", "remove", "bogus"])},
                        optional={"path": st.one_of(st.sampled_from(SCIM_FIELDS), hostile_text), "value": hostile_json},
                    ),
                    max_size=3,
                )
            )
        if spec.path.endswith(".search"):
            for name in SCIM_QUERY:
                if draw(st.booleans()):
                    document[name] = draw(hostile_json)
    elif draw(st.integers(0, 4)) == 0:
        document[draw(hostile_text)] = draw(hostile_json)  # an unknown field
    return _encode_json(document, ensure_ascii)


def _sign(world: World, body: bytes) -> list[tuple[bytes, bytes]]:
    """Valid signatures of ``body`` for every webhook the world has: the sample's per-integration endpoint, the
    GitHub App's and Slack's app-wide ones, so a hostile body gets past verification."""
    import time

    digest = hmac.new(world.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
    static = hmac.new(STATIC_WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    stamp = str(int(time.time()))
    slack = hmac.new(STATIC_WEBHOOK_SECRET.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return [
        (b"x-sample-signature", f"sha256={digest}".encode()),
        (b"x-hub-signature-256", f"sha256={static}".encode()),
        (b"x-slack-request-timestamp", stamp.encode()),
        (b"x-slack-signature", f"v0={slack}".encode()),
    ]


@st.composite
def _headers(draw: st.DrawFn, spec: RouteSpec, world: World, body: bytes) -> list[tuple[bytes, bytes]]:
    from engine.api.principal import sign_principal

    headers: list[tuple[bytes, bytes]] = []
    auth = draw(
        st.sampled_from(
            [
                "server",
                "server",
                "user",
                "none",
                "hostile-bearer",
                "hostile-principal",
                "signed-principal",
                "scim",
                "session-cookie",
            ]
        )
    )
    if auth == "server":
        headers.append((b"authorization", f"Bearer {world.api_key}".encode()))
    elif auth == "user":
        headers.append((b"authorization", f"Bearer {world.user_key}".encode()))
    elif auth == "scim":
        headers.append((b"authorization", f"Bearer {world.scim_bearer}".encode()))
    elif auth == "hostile-bearer":
        headers.append((b"authorization", b"Bearer " + draw(hostile_header_value)))
    elif auth == "hostile-principal":
        headers.append((b"x-tether-principal", draw(hostile_header_value)))
    elif auth == "session-cookie":
        # The development login's cookie (what the page's browser sends), valid or not, with the CSRF header or not.
        from engine.web.session import session_key

        key = session_key(world.runtime)
        if key and draw(st.booleans()):
            owner = draw(st.one_of(st.just("o1"), hostile_text.filter(lambda t: len(t) < 2000)))
            value = sign_principal(key, tenant="t1", role="user", owner=owner, session="s").encode()
        else:
            value = draw(hostile_header_value)
        headers.append((b"cookie", b"tether_session=" + value))
        if draw(st.booleans()):
            headers.append((b"x-tether-csrf", b"1"))
    elif auth == "signed-principal":
        # A careless host app signs whatever its user typed: the header is authentic, its tenant and owner hostile.
        tenant = draw(st.one_of(st.just("t1"), hostile_text.filter(lambda t: len(t) < 2000)))
        owner = draw(st.one_of(st.just("o1"), hostile_text.filter(lambda t: len(t) < 2000)))
        role = draw(st.sampled_from(["server", "user"]))
        value = sign_principal(PRINCIPAL_KEY, tenant=tenant, role=role, owner=owner)  # type: ignore[arg-type]
        headers.append((b"x-tether-principal", value.encode()))
    headers.append(
        (
            b"content-type",
            draw(
                st.sampled_from(
                    [
                        b"application/json",
                        b"application/json",
                        b"application/scim+json",
                        b"application/x-www-form-urlencoded",
                        b"text/plain",
                        b"application/json; charset=\xff",
                    ]
                )
            ),
        )
    )
    if "webhooks" in spec.path and spec.method == "POST" and draw(st.booleans()):
        headers.extend(_sign(world, body))
        headers.append((b"x-sample-event", draw(st.sampled_from([b"item.changed", b"other"]))))
        headers.append((b"x-github-event", draw(st.sampled_from([b"installation", b"ping", b"dependabot_alert"]))))
    for name in draw(st.lists(st.sampled_from(SENSITIVE_HEADERS), max_size=3, unique=True)):
        headers.append((name, draw(hostile_header_value)))
    return headers


@st.composite
def request_for(draw: st.DrawFn, spec: RouteSpec, world: World) -> Request:
    """One request for ``spec``: real or hostile path parameters, a hostile query, headers and body."""
    path = spec.path
    chosen: dict[str, str] = {}
    if {"definition_id", "webhook_name"} <= set(spec.params) and draw(st.booleans()):
        # An app-wide webhook that exists, so the probe reaches its verification and routing.
        chosen = dict(zip(("definition_id", "webhook_name"), draw(st.sampled_from(STATIC_WEBHOOKS)), strict=True))
    for name in spec.params:
        real = world.pool(name)
        if name in chosen:
            value = chosen[name]
        else:
            value = draw(st.sampled_from(real)) if real and draw(st.integers(0, 2)) else draw(hostile_text)
        path = path.replace("{" + name + "}", _segment(value) if value else "x", 1)
    names = list(spec.query) + list(SCIM_QUERY if spec.scim else ()) + list(LOOSE_QUERY)
    pairs = []
    for name in draw(st.lists(st.sampled_from(names), max_size=4)):
        real = world.query_pool(name)
        if name == "cursor" and draw(st.booleans()):
            # A cursor is base64 of "<queued_at>|<run id>" (runs) or "r1:<schema>:<id>" (records): what it decodes
            # to is as hostile as any other text.
            stamp = draw(st.sampled_from(["2024-01-01T00:00:00+00:00", "9999-12-31T23:59:59+14:00", "2024-01-01", "x"]))
            text = draw(st.sampled_from([f"{stamp}|", "r1:asset:", "r1:directory_account:1"]))
            text = f"{text}{draw(_query_text)}".encode("utf-8", "surrogatepass")
            value = base64.urlsafe_b64encode(text).decode().rstrip("=")
        elif real and draw(st.booleans()):
            value = draw(st.sampled_from(real))
        else:
            value = draw(_query_text)
        pairs.append((name, value))
    body = draw(_body(spec, world)) if spec.method in ("POST", "PUT", "PATCH") else b""
    headers = draw(_headers(spec, world, body))
    return Request(spec.method, path.encode("ascii"), _query_bytes(pairs), headers, body)


# -- sending -----------------------------------------------------------------------------------------------------


async def _call(app: FastAPI, request: Request) -> Response:
    raw = request.raw_path
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": "http",
        # uvicorn: ``unquote`` of the request line, UTF-8 with replacement (a lone surrogate's bytes become U+FFFD).
        "path": unquote(raw.decode("ascii")),
        "raw_path": raw,
        "root_path": "",
        "query_string": request.query,
        "headers": [(b"host", b"tether.test"), *request.headers],
        "client": ("127.0.0.1", 1234),
        "server": ("tether.test", 80),
        "state": {},
    }
    messages = [{"type": "http.request", "body": request.body, "more_body": False}]
    sent: list[dict[str, Any]] = []
    answered = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await answered.wait()  # as a server does: the client stays until it has its answer
        return {"type": "http.disconnect"}

    async def send_(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            answered.set()

    await app(scope, receive, send_)
    start = next((m for m in sent if m["type"] == "http.response.start"), None)
    if start is None:
        return Response(0, {}, b"")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return Response(start["status"], {k.lower(): v for k, v in start.get("headers", [])}, body)


#: Seconds one request may take before the probe counts it as a hang.
REQUEST_TIMEOUT = 30.0


def send(made: World, request: Request) -> Response:
    return made.loop.run_until_complete(asyncio.wait_for(_call(made.app, request), REQUEST_TIMEOUT))


# -- judging -----------------------------------------------------------------------------------------------------


def problem(spec: RouteSpec, response: Response, codes: set[str], scim_types: set[str]) -> str | None:
    """What is wrong with this answer, or ``None``. A 5xx is always wrong; a 4xx must be the documented envelope."""
    status = response.status
    if status == 0:
        return "no response"
    if status >= 500:
        return f"server error {status}: {response.body[:300]!r}"
    if status < 400:
        return None
    content_type = response.headers.get(b"content-type", b"")
    if spec.key == "GET /dev/login" and status == 404 and content_type.startswith(b"text/html"):
        return None  # the login page says the development login is off: a page, for a person
    try:
        document = json.loads(response.body)
    except ValueError:
        return f"{status} with a body that is not JSON: {response.body[:200]!r}"
    if spec.scim:
        if not isinstance(document, dict) or document.get("schemas") != [SCIM_ERROR]:
            return f"{status} without a SCIM Error body: {response.body[:200]!r}"
        if document.get("status") != str(status):
            return f"{status} with a SCIM Error body saying status {document.get('status')!r}"
        scim_type = document.get("scimType")
        if scim_type is not None and scim_type not in scim_types:
            return f"{status} with an undocumented scimType {scim_type!r}"
        return None
    error = document.get("error") if isinstance(document, dict) else None
    if (
        not isinstance(error, dict)
        or not isinstance(error.get("code"), str)
        or not isinstance(error.get("message"), str)
    ):
        return f"{status} without the error envelope: {response.body[:200]!r}"
    if error["code"] not in codes:
        return f"{status} with an undocumented code {error['code']!r}"
    return None


def destructive(spec: RouteSpec) -> bool:
    return spec.method == "DELETE" or spec.path.endswith("/disconnect")


# -- the probe ---------------------------------------------------------------------------------------------------


def probe(
    made: World,
    spec: RouteSpec,
    on_answer: Callable[[Request, Response], None],
    *,
    max_examples: int,
    shrink: bool = True,
    seed: int | None = None,
) -> None:
    """Draw ``max_examples`` requests for ``spec`` and hand each answer to ``on_answer`` (which may assert).

    Without ``seed`` the draw is derandomized (the same requests on every run: what the suite wants); ``shrink``
    off for the bench, which counts instead of stopping at the first failure.
    """
    phases = [Phase.explicit, Phase.generate, *([Phase.shrink] if shrink else [])]

    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=seed is None,
        phases=phases,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(request=request_for(spec, made))
    def run(request: Request) -> None:
        response = send(made, request)
        if destructive(spec):
            restore(made)
        on_answer(request, response)

    if seed is not None:
        run = hypothesis_seed(seed)(run)
    run()
