"""One regression test per answer ``test_hostile_input.py`` / ``python -m bench fuzz`` found wrong (issue 16).

Each failed before its fix: a 500 (PostgreSQL's ``VARCHAR(N)`` limits, a lone surrogate sent as raw bytes, a
``.search`` attribute list holding a number, a signed principal naming a tenant the store cannot hold) or a 4xx
without the documented envelope (an undocumented ``bad_request`` for unparsable JSON, Tether's envelope on SCIM
paths).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.api.principal import sign_principal
from engine.store.database import Database
from support.hostile import DEPTH, PRINCIPAL_KEY, SCIM_ERROR, USER_SCHEMA, Request, Response, World, send, world


@pytest.fixture
def pg_world(postgres_database: Database, tmp_path: Path) -> Iterator[World]:
    with world(postgres_database.url, tmp_path) as made:
        yield made


@pytest.fixture(params=["sqlite", "postgres"])
def any_world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    database: Database = request.getfixturevalue(f"{request.param}_database")
    with world(database.url, tmp_path) as made:
        yield made


def call(
    made: World,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    auth: bytes | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> Response:
    given = [(b"authorization", auth or f"Bearer {made.api_key}".encode()), (b"content-type", b"application/json")]
    return send(made, Request(method, path.encode(), b"", [*(headers or []), *given], body))


def error_code(response: Response) -> tuple[int, str]:
    return response.status, json.loads(response.body)["error"]["code"]


def scim_error(response: Response) -> tuple[int, str | None]:
    document = json.loads(response.body)
    assert document["schemas"] == [SCIM_ERROR] and document["status"] == str(response.status), document
    return response.status, document.get("scimType")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/integrations", {"definition_id": "sample", "owner_id": "o" * 201}),
        ("POST", "/v1/integrations", {"definition_id": "sample", "owner_id": "o7", "name": "n" * 201}),
        ("POST", "/v1/integrations", {"definition_id": "d" * 101, "owner_id": "o7"}),
        ("PATCH", "/v1/integrations/{integration}", {"name": "é" * 201}),
        ("POST", "/v1/scim-connections", {"owner_id": "o" * 201}),
        ("POST", "/v1/scim-connections", {"owner_id": "o8", "name": "n" * 201}),
    ],
)
def test_text_longer_than_its_column_is_invalid_input(pg_world: World, method: str, path: str, body: dict) -> None:
    path = path.format(integration=pg_world.integration_id)
    response = call(pg_world, method, path, json.dumps(body).encode())
    assert error_code(response) == (422, "invalid_input"), response.body
    assert b"at most" in response.body


def test_text_at_its_column_length_is_stored(pg_world: World) -> None:
    body = {"definition_id": "sample", "owner_id": "o" * 200, "name": "é" * 200}
    response = call(pg_world, "POST", "/v1/integrations", json.dumps(body).encode())
    assert response.status == 201, response.body
    assert json.loads(response.body)["owner_id"] == "o" * 200


@pytest.mark.parametrize(
    ("tenant", "owner", "session"),
    [("t\x00", "o", ""), ("t" * 201, "o", ""), ("t1", "o" * 201, ""), ("t1", "o\ud800", ""), ("t1", "o", "s\ud800")],
)
def test_a_signed_principal_the_store_cannot_hold_is_unauthenticated(
    pg_world: World, tenant: str, owner: str, session: str
) -> None:
    # The host app signed it (the signature verifies): it is what its user typed that the store cannot hold.
    header = sign_principal(PRINCIPAL_KEY, tenant=tenant, role="user", owner=owner, session=session).encode()
    for method, path, body in (
        ("GET", "/v1/integrations", b""),
        ("POST", "/v1/integrations", b'{"definition_id": "sample"}'),
    ):
        response = send(
            pg_world,
            Request(
                method,
                path.encode(),
                b"",
                [(b"x-tether-principal", header), (b"content-type", b"application/json")],
                body,
            ),
        )
        assert error_code(response) == (401, "unauthenticated"), response.body


@pytest.mark.parametrize(
    "body",
    [
        b'{"definition_id": "sample", "owner_id": "\xed\xa0\x80"}',  # a lone surrogate as raw (invalid) UTF-8
        '{"definition_id": "sample", "owner_id": "o", "user_input": {"project": "\ud800"}}'.encode(
            "utf-16", "surrogatepass"
        ),  # json.loads guesses UTF-16 and decodes it with surrogatepass
        b'{"definition_id": "sample", "owner_id": "o", "user_input": {"\xed\xb2\x80": 1}}',
    ],
)
def test_a_lone_surrogate_as_raw_bytes_is_invalid_input(any_world: World, body: bytes) -> None:
    assert error_code(call(any_world, "POST", "/v1/integrations", body)) == (422, "invalid_input")


def test_a_lone_surrogate_as_raw_bytes_in_a_connect_body_is_invalid_input(any_world: World) -> None:
    # ``connection: str | None`` let the surrogate through to the flow's row (500 on both databases).
    body = b'{"connection": "\xed\xa0\x80", "return_url": "\xed\xa0\x80"}'
    for action in ("connect", "reconnect", "upgrade"):
        response = call(any_world, "POST", f"/v1/integrations/{any_world.integration_id}/{action}", body)
        assert error_code(response) == (422, "invalid_input"), (action, response.body)


def test_a_lone_surrogate_as_raw_bytes_in_a_scim_body_is_invalid_value(any_world: World) -> None:
    body = b'{"schemas": ["' + USER_SCHEMA.encode() + b'"], "userName": "\xed\xa0\x80"}'
    response = call(
        any_world,
        "POST",
        f"/v1/scim/{any_world.scim_token}/v2/Users",
        body,
        auth=f"Bearer {any_world.scim_bearer}".encode(),
    )
    assert scim_error(response) == (400, "invalidValue")


def test_json_the_parser_cannot_decode_is_invalid_json(any_world: World) -> None:
    for body in (b"[" * DEPTH + b"]" * DEPTH, b'{"a":' * DEPTH + b"1" + b"}" * DEPTH, b"\xff\xfe{\x00}", b'"\xff"'):
        for path in ("/v1/integrations", f"/v1/integrations/{any_world.integration_id}/connect"):
            assert error_code(call(any_world, "POST", path, body)) == (400, "invalid_json"), (path, body[:20])


def test_a_scim_path_no_route_serves_answers_a_scim_error(any_world: World) -> None:
    for method, rest in (("GET", "/Users/a/b/c"), ("GET", "/Nothing/here/at/all"), ("PUT", "/Users"), ("GET", "")):
        response = call(
            any_world,
            method,
            f"/v1/scim/{any_world.scim_token}/v2{rest}",
            auth=f"Bearer {any_world.scim_bearer}".encode(),
        )
        assert response.status in (404, 405), (method, rest, response.status)
        assert response.headers[b"content-type"].startswith(b"application/scim+json"), (method, rest)
        scim_error(response)


def test_a_scim_body_over_1_mb_is_a_scim_413(any_world: World) -> None:
    body = b'{"userName": "' + b"x" * (1024 * 1024) + b'"}'
    response = call(
        any_world,
        "POST",
        f"/v1/scim/{any_world.scim_token}/v2/Users",
        body,
        auth=f"Bearer {any_world.scim_bearer}".encode(),
    )
    assert scim_error(response) == (413, None)


def test_a_scim_search_attribute_list_that_is_not_strings_is_invalid_value(any_world: World) -> None:
    auth = f"Bearer {any_world.scim_bearer}".encode()
    for name in ("attributes", "excludedAttributes"):
        for attributes in ([1], [None, "userName"], 7, {"a": "b"}):
            for rest in ("/.search", "/Users/.search"):
                response = call(
                    any_world,
                    "POST",
                    f"/v1/scim/{any_world.scim_token}/v2{rest}",
                    json.dumps({name: attributes}).encode(),
                    auth=auth,
                )
                assert scim_error(response) == (400, "invalidValue"), (name, attributes, response.body)
        ok = call(
            any_world,
            "POST",
            f"/v1/scim/{any_world.scim_token}/v2/.search",
            json.dumps({name: ["userName"]}).encode(),
            auth=auth,
        )
        assert ok.status == 200, ok.body


def test_a_cursor_that_decodes_to_nul_is_invalid_cursor(pg_world: World) -> None:
    import base64

    for run_id in ("\x00", "r\x00un"):
        cursor = base64.urlsafe_b64encode(f"2024-01-01T00:00:00+00:00|{run_id}".encode()).decode().rstrip("=")
        response = send(
            pg_world,
            Request(
                "GET",
                f"/v1/integrations/{pg_world.integration_id}/runs".encode(),
                f"cursor={cursor}".encode(),
                [(b"authorization", f"Bearer {pg_world.api_key}".encode())],
                b"",
            ),
        )
        assert error_code(response) == (422, "invalid_cursor"), response.body


def test_a_dev_login_for_a_tenant_the_store_cannot_hold_is_invalid_input(tmp_path: Path) -> None:
    # SQLite worlds have the development login on. The cookie it signed was refused on every request after.
    with world(f"sqlite:///{tmp_path / 'login.db'}", tmp_path) as made:
        assert made.dev_login
        for form in (b"tenant=" + b"t" * 201 + b"&owner=o", b"tenant=t&owner=" + b"o" * 201):
            request = Request(
                "POST", b"/dev/login", b"", [(b"content-type", b"application/x-www-form-urlencoded")], form
            )
            assert error_code(send(made, request)) == (422, "invalid_input")
        ok = Request("POST", b"/dev/login", b"", [(b"content-type", b"application/x-www-form-urlencoded")], b"tenant=t")
        assert send(made, ok).status == 303
