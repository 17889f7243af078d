"""The principal header page's worked example is what the engine accepts: the Python on the page prints the header
on the page, the header carries the claims on the page, and a server configured with the page's key admits it as
that user (and refuses it once its ``exp`` has passed, or under another key).

The example is read out of ``docs/principal-header.md`` by its ``<!-- principal-example:NAME -->`` markers, so
editing the page without keeping it true fails here.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import re2

from engine.api import create_app
from engine.api.principal import Principal, Unauthenticated, verify_principal
from engine.store.tables import Integration
from support.sample_runtime import start_sample_runtime

PAGE = Path(__file__).resolve().parents[2] / "docs" / "principal-header.md"
BLOCK = re2.compile(r"(?s)<!-- principal-example:([a-z]+) -->\n```[a-z]*\n(.*?)\n```")


def example() -> dict[str, str]:
    blocks = {name: text for name, text in BLOCK.findall(PAGE.read_text())}
    assert set(blocks) == {"key", "claims", "header", "python"}, f"markers found: {sorted(blocks)}"
    return blocks


def page_key(blocks: dict[str, str]) -> str:
    name, _, value = blocks["key"].partition("=")
    assert name == "TETHER_SECRET_PRINCIPAL_KEY"
    return value


def test_the_python_on_the_page_prints_the_header_on_the_page() -> None:
    blocks = example()
    printed = io.StringIO()
    namespace: dict[str, object] = {}
    with contextlib.redirect_stdout(printed):
        exec(compile(blocks["python"], str(PAGE), "exec"), namespace)
    assert printed.getvalue().strip() == blocks["header"]
    assert namespace["KEY"] == page_key(blocks)


def test_the_header_carries_the_claims_on_the_page() -> None:
    blocks = example()
    payload = blocks["header"].partition(".")[0]
    assert "=" not in blocks["header"]
    assert base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode() == blocks["claims"]


def test_the_engine_accepts_the_header_with_the_key_and_honours_exp() -> None:
    blocks = example()
    claims = json.loads(blocks["claims"])
    header, key = blocks["header"], page_key(blocks)
    expected = Principal(tenant_id="acme", role="user", owner_id="user-42", session_id="sess-7f3a")
    assert verify_principal(header, key) == expected
    assert verify_principal(header, key, now=claims["exp"]) == expected  # exp == now is still valid
    with pytest.raises(Unauthenticated, match="expired"):
        verify_principal(header, key, now=claims["exp"] + 1)
    with pytest.raises(Unauthenticated, match="signature"):
        verify_principal(header, key + "x")


@pytest.fixture
async def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[httpx.AsyncClient, object]]:
    runtime = start_sample_runtime(
        monkeypatch, f"sqlite:///{tmp_path / 'docs.db'}", str(tmp_path), migrate=True,
        secret_principal_key=page_key(example()),
    )
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
        yield http, runtime
    runtime.close()


async def test_a_server_with_the_page_key_admits_the_header_as_that_user(
    client: tuple[httpx.AsyncClient, object],
) -> None:
    http, runtime = client
    header = {"X-Tether-Principal": example()["header"]}
    created = await http.post("/v1/integrations", json={"definition_id": "sample"}, headers=header)
    assert created.status_code == 201, created.text
    assert (created.json()["tenant_id"], created.json()["owner_id"]) == ("acme", "user-42")
    with runtime.db.session() as session:  # type: ignore[attr-defined]
        row = session.get(Integration, created.json()["id"])
        assert row is not None and (row.tenant_id, row.owner_id) == ("acme", "user-42")
    listed = await http.get("/v1/integrations", headers=header)
    assert [i["id"] for i in listed.json()] == [created.json()["id"]]
    tampered = {"X-Tether-Principal": example()["header"][:-2] + "AA"}
    refused = await http.get("/v1/integrations", headers=tampered)
    assert (refused.status_code, refused.json()["error"]["code"]) == (401, "unauthenticated")
