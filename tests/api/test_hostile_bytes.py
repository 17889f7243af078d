"""Bytes the store cannot hold, and numbers that are not ASCII, answer 4xx at the edge on every route, never 500.

Driven at the raw ASGI level (so a test can send what a client library would refuse to: NUL in a header, '²' in
Content-Length, a chunked body) and through a real uvicorn server for chunked uploads, against PostgreSQL, the
database that refuses NUL in text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.api import create_app
from engine.api.principal import create_api_key, sign_principal
from engine.catalog.registry import Registry
from engine.custody.crypto import generate_master_key
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database
from support import sample_definition as s
from support.server import free_port, serve

PRINCIPAL_KEY = "principal-signing-key"


@pytest.fixture
def runtime(postgres_database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    monkeypatch.setenv("TETHER_SAMPLE_CLIENT_ID", "sample-client")
    monkeypatch.setenv("TETHER_SECRET_SAMPLE_CLIENT_SECRET", "s3cr3t-value")
    monkeypatch.setenv("TETHER_SECRET_MASTER_KEY", generate_master_key())
    registry = Registry()
    registry.register(s.definition)
    settings = Settings(
        database_url=postgres_database.url,
        secret_principal_key=PRINCIPAL_KEY,  # type: ignore[arg-type]
        state_dir=str(tmp_path),
        public_url="http://127.0.0.1:8000",
    )
    rt = Runtime.start(settings, registry=registry)
    yield rt
    rt.close()


@pytest.fixture
def api_key(runtime: Runtime) -> str:
    return create_api_key(runtime.db, tenant="t1", role="server")[0]


async def call(
    app: Any,
    method: str,
    path: str,
    *,
    query: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    chunks: list[bytes] | None = None,
) -> tuple[int, bytes]:
    """One request straight on ASGI: ``chunks`` are sent as separate body messages (a chunked upload)."""
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)] \
        if chunks else [{"type": "http.request", "body": b"", "more_body": False}]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("utf-8", "surrogatepass"),
        "root_path": "",
        "query_string": query,
        "headers": [(b"host", b"tether.test"), *(headers or [])],
        "client": ("127.0.0.1", 1234),
        "server": ("tether.test", 80),
        "state": {},
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def bearer(key: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {key}".encode()), (b"content-type", b"application/json")]


def code_of(body: bytes) -> str:
    return json.loads(body)["error"]["code"]


NUL_AND_SURROGATE = ["a\x00b", "\ud800", "x\udfffy"]


@pytest.mark.parametrize("bad", NUL_AND_SURROGATE)
async def test_json_strings_the_store_cannot_hold_are_invalid_input(runtime: Runtime, api_key: str, bad: str) -> None:
    app = create_app(runtime)
    body = json.dumps({"definition_id": "sample", "owner_id": bad}).encode()  # ensure_ascii: "\u0000", "\ud800"
    status, content = await call(app, "POST", "/v1/integrations", headers=bearer(api_key), chunks=[body])
    assert (status, code_of(content)) == (422, "invalid_input"), content
    nested = json.dumps({"definition_id": "sample", "owner_id": "o", "user_input": {"project": {bad: [1]}}}).encode()
    status, content = await call(app, "POST", "/v1/integrations", headers=bearer(api_key), chunks=[nested])
    assert (status, code_of(content)) == (422, "invalid_input"), content


async def test_an_escaped_backslash_is_not_a_nul(runtime: Runtime, api_key: str) -> None:
    app = create_app(runtime)
    body = b'{"definition_id": "sample", "owner_id": "C:\\\\u0000"}'  # the text C:\u0000, no NUL in it
    status, content = await call(app, "POST", "/v1/integrations", headers=bearer(api_key), chunks=[body])
    assert status == 201, content
    assert json.loads(content)["owner_id"] == "C:\\u0000"


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/v1/integrations/abc\x00def", b""),
        ("/v1/integrations/abc\x00def/runs", b""),
        ("/v1/runs/r\x00", b""),
        ("/v1/integrations", b"x=%00"),
        ("/v1/integrations/abc/runs", b"cursor=%00"),
        ("/v1/integrations/abc/deliveries", b"status=received%00"),
        ("/v1/oauth/callback", b"state=%00&code=x"),
        ("/v1/oauth/start", b"flow=%00&session=s"),
        ("/integrations", b"q=%00"),
        ("/integrations/sample/callback", b"tether_result=%00"),
        ("/v1/definitions/sa\x00mple", b""),
    ],
)
async def test_nul_in_a_path_or_query_is_invalid_input(runtime: Runtime, api_key: str, path: str, query: bytes) -> None:
    status, content = await call(create_app(runtime), "GET", path, query=query, headers=bearer(api_key))
    assert (status, code_of(content)) == (422, "invalid_input"), content


async def test_scim_routes_answer_a_scim_error(runtime: Runtime) -> None:
    app = create_app(runtime)
    path = "/v1/scim/" + "t" * 20 + "/v2/Users"
    status, content = await call(app, "POST", path, chunks=[b'{"userName": "\\u0000"}'])
    assert status == 400
    body = json.loads(content)
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"] and body["scimType"] == "invalidValue"
    status, content = await call(app, "GET", path + "/a\x00b")
    assert status == 400 and json.loads(content)["scimType"] == "invalidValue"


async def test_a_form_with_nul_is_invalid_input(runtime: Runtime) -> None:
    headers = [(b"content-type", b"application/x-www-form-urlencoded"), (b"origin", b"http://127.0.0.1:8000")]
    status, content = await call(create_app(runtime), "POST", "/dev/login", headers=headers, chunks=[b"tenant=%00"])
    assert (status, code_of(content)) == (422, "invalid_input"), content


@pytest.mark.parametrize("value", [b"\xff\xfe.\xc3\xa9", "é.é".encode("latin-1"), b"abc.\x80"])
async def test_non_ascii_principal_header_is_unauthenticated(runtime: Runtime, value: bytes) -> None:
    headers = [(b"x-tether-principal", value)]
    status, content = await call(create_app(runtime), "GET", "/v1/integrations", headers=headers)
    assert (status, code_of(content)) == (401, "unauthenticated"), content
    # The page reads the same header to show who is signed in: it renders for nobody instead.
    status, _ = await call(create_app(runtime), "GET", "/integrations", headers=headers)
    assert status == 200


@pytest.mark.parametrize("exp", ["nan", "inf", "1e309", True])
async def test_a_signed_principal_that_never_expires_is_refused(runtime: Runtime, exp: Any) -> None:
    import base64
    import hashlib
    import hmac

    payload = json.dumps({"tenant": "t1", "role": "server", "exp": exp}).encode()
    text = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    sig = base64.urlsafe_b64encode(hmac.new(PRINCIPAL_KEY.encode(), text.encode(), hashlib.sha256).digest())
    header = f"{text}.{sig.rstrip(b'=').decode()}".encode()
    headers = [(b"x-tether-principal", header)]
    status, content = await call(create_app(runtime), "GET", "/v1/integrations", headers=headers)
    assert (status, code_of(content)) == (401, "unauthenticated"), content


async def test_a_valid_signed_principal_still_works(runtime: Runtime) -> None:
    header = sign_principal(PRINCIPAL_KEY, tenant="t1", role="server").encode()
    status, _ = await call(create_app(runtime), "GET", "/v1/integrations", headers=[(b"x-tether-principal", header)])
    assert status == 200


@pytest.mark.parametrize("length", [b"\xc2\xb2", "²".encode(), "٣".encode(), b"1" * 5000, b"12abc", b"-1", b" 5"])
@pytest.mark.parametrize("path", ["/v1/integrations", "/v1/webhooks/" + "t" * 20, "/v1/scim/" + "t" * 20 + "/v2/Users"])
async def test_a_content_length_that_is_not_ascii_digits_is_no_server_error(
    runtime: Runtime, api_key: str, length: bytes, path: str
) -> None:
    headers = [*bearer(api_key), (b"content-length", length)]
    status, _ = await call(create_app(runtime), "POST", path, headers=headers, chunks=[b"{}"])
    assert 400 <= status < 500


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/integrations"),
        ("PATCH", "/v1/integrations/abc"),
        ("POST", "/v1/integrations/abc/connect"),
        ("POST", "/v1/integrations/abc/credentials/ApiKey"),
        ("POST", "/v1/integrations/abc/operations/ItemSync"),
        ("POST", "/v1/scim/" + "t" * 20 + "/v2/Users"),
        ("POST", "/v1/scim-connections"),
        ("POST", "/dev/login"),
        ("POST", "/v1/webhooks/" + "t" * 20),
        ("POST", "/v1/webhooks/static/sample/events"),
    ],
)
async def test_a_chunked_body_over_1_mb_is_413_on_every_route(
    runtime: Runtime, api_key: str, method: str, path: str
) -> None:
    chunks = [b"[" + b"1," * 100_000] * 6 + [b"1]"]  # ~1.2 MB, no content-length
    status, content = await call(create_app(runtime), method, path, headers=bearer(api_key), chunks=chunks)
    if path.startswith("/v1/scim/"):  # SCIM routes answer every failure as a SCIM Error body
        assert (status, json.loads(content)["status"]) == (413, "413"), content
        return
    assert (status, code_of(content)) == (413, "body_too_large"), content


def test_a_chunked_upload_over_1_mb_through_uvicorn_is_413(runtime: Runtime, api_key: str) -> None:
    def upload() -> Iterator[bytes]:
        yield b'{"definition_id": "sample", "owner_id": "o", "name": "'
        for _ in range(12):
            yield b"x" * 100_000
        yield b'"}'

    with serve(create_app(runtime), free_port()) as base:
        for path in ("/v1/integrations", "/v1/webhooks/" + "t" * 20):
            response = httpx.post(
                base + path, content=upload(), headers={"authorization": f"Bearer {api_key}"}, timeout=30
            )
            assert response.request.headers.get("transfer-encoding") == "chunked"
            assert response.status_code == 413, response.text
            assert response.json()["error"]["code"] == "body_too_large"
        small = httpx.post(
            base + "/v1/integrations",
            content=iter([b'{"definition_id": "sample", ', b'"owner_id": "o"}']),
            headers={"authorization": f"Bearer {api_key}", "content-type": "application/json"},
            timeout=30,
        )
        assert small.status_code == 201, small.text
