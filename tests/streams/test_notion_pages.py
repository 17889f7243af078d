"""Notion's shipped data definition (``custom_oauth2/providers/notion.toml``): its ``PageSync`` stream, declared as
data, lists pages through ``POST /v1/search`` and maps them into ``file``.

The shipped file is read as it is, with only ``apiUrl`` pointed at the local server replaying Notion's documented
search answers (``tests/fixtures/streams/notion_search_*.json`` name their sources) and Notion's own 429.
"""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path
from typing import Any

import pytest

from definitions.custom_oauth2 import PROVIDERS, generate, notion, parse_spec
from engine import Checkpoint, ClientContext, NoConfig, OperationContext, ProviderError
from engine.catalog.registry import Registry
from support.cassette_fixtures import response_fixture
from support.stream_definition import BASE
from support.stream_server import ProviderApi, fixture

NOTION_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "notion"


def local_notion() -> Any:
    data = tomllib.loads((PROVIDERS / "notion.toml").read_text())
    assert data["apiUrl"] == "https://api.notion.com"
    data["apiUrl"] = BASE
    return generate(parse_spec(data, "notion.toml"))


def mapped(payloads: list[Any]) -> list[dict[str, Any]]:
    registry = Registry()
    registry.register(notion)
    mapping = registry.mapping("notion", "file", "page")
    assert mapping is not None and mapping.map is not None
    return [
        mapping.map.evaluate(
            {
                "envelope": {},
                "variant": "page",
                "resource": "",
                "action": "",
                "payload": p.data if hasattr(p, "data") else p,
            }
        )
        for p in payloads
    ]


def sync(generated: Any, checkpoint: Any = None) -> tuple[list[Any], list[Any]]:
    page_sync = next(op for op in generated.definition().operations if op.operation_id() == "PageSync")
    token = generated.slot.model_validate({"access_token": "secret_notion-token", "scopes": ["read:pages"]})

    async def go() -> tuple[list[Any], list[Any]]:
        async with generated.client().build(ClientContext("int_1", token, None, None)) as client:
            ctx = OperationContext("int_1", "t1", NoConfig(), client, None, None, checkpoint=checkpoint)
            payloads, checkpoints = [], []
            async for item in page_sync().ingest(ctx):
                (checkpoints if isinstance(item, Checkpoint) else payloads).append(item)
            return payloads, checkpoints

    return asyncio.run(go())


def test_the_shipped_definition_declares_the_page_stream() -> None:
    Registry().register(notion)
    page_sync = notion.operation("PageSync")
    assert page_sync is not None and page_sync.policy.mode == "queued" and page_sync.policy.reconcile
    assert [(e.schema, e.variant) for e in page_sync.emits] == [("file", "page")]
    assert "https://api.notion.com" in notion.connections[0].auth.urls()  # type: ignore[union-attr]


def test_pages_are_searched_page_by_page_and_mapped_into_files(
    api: ProviderApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TETHER_ALLOW_LOOPBACK_PROVIDERS", "1")
    api.answer("/v1/search", "notion_search_page1", "notion_search_page2")
    payloads, checkpoints = sync(local_notion())
    first, second = api.on("/v1/search")
    assert first.body == {
        "filter": {"property": "object", "value": "page"},
        "sort": {"timestamp": "last_edited_time", "direction": "ascending"},
        "page_size": 100,
    }
    assert second.body == {**first.body, "start_cursor": "e6c6f5ff-c70e-4bcd-a0f6-7b9f3a1e8c04"}
    assert first.headers["notion-version"] == "2022-06-28"
    assert first.authorization == "Bearer secret_notion-token"
    assert len(checkpoints) == 1
    files = mapped(payloads)
    assert [(f["external_id"][:8], f["name"], f["trashed"], f["parent_id"]) for f in files] == [
        ("59833787", "Getting Started", False, None),
        ("be633bf1", "Bug bash", True, "a1d8501e-1ac1-43e9-a6bd-ea9fe6c8822b"),
        ("b55c9c91", None, False, "59833787-2cf9-4fdf-8782-e53db20768a5"),  # an untitled page: no name, kept
    ]
    bug = files[1]
    assert (bug["kind"], bug["source_created_at"], bug["source_modified_at"], bug["url"]) == (
        "page",
        "2022-10-24T22:54:00.000Z",
        "2023-03-08T18:25:00.000Z",
        "https://www.notion.so/Bug-bash-be633bf1dfa0436db259571129a590e5",
    )
    assert bug["attributes"]["parent_type"] == "database_id"


def test_a_title_in_several_rich_text_pieces_is_joined_and_a_partial_page_maps() -> None:
    page = fixture("notion_search_page1")["body"]["results"][0]
    pieces = [{**page["properties"]["title"]["title"][0], "plain_text": text} for text in ("Getting ", "Started", "!")]
    titled = {**page, "properties": {"title": {"id": "title", "type": "title", "title": pieces}}}
    partial = {"object": "page", "id": "0c3c4f7e-4f2d-4c62-9b44-3b8a6f0a9d21"}  # PartialPageObjectResponse
    joined, bare = mapped([titled, partial])
    assert joined["name"] == "Getting Started!"
    assert bare["external_id"] == partial["id"] and bare["name"] is None and bare["trashed"] is False


def test_notions_429_is_a_rate_limit_with_its_retry_after(api: ProviderApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_ALLOW_LOOPBACK_PROVIDERS", "1")
    limited = response_fixture(NOTION_FIXTURES, "error_429")
    api.answer("/v1/search", "notion_search_page1", (limited["status"], limited["headers"], limited["body"]))
    with pytest.raises(ProviderError) as failed:
        sync(local_notion())
    assert (failed.value.code, failed.value.retry_after) == ("rate_limited", 17.0)
    assert "rate limited" not in failed.value.message  # Notion's own message is never repeated


def test_the_pages_persist_as_file_records(
    sqlite_database: Any, api: ProviderApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the ingest pipeline itself (validation into the ``file`` model, the upsert on ``external_id``)."""
    from sqlmodel import select

    from ingest.models.file import File
    from ingest.pipeline import IngestContext, IngestPipeline

    monkeypatch.setenv("TETHER_ALLOW_LOOPBACK_PROVIDERS", "1")
    api.answer("/v1/search", "notion_search_page1", "notion_search_page2")
    payloads, _ = sync(local_notion())
    registry = Registry()
    registry.register(notion)
    context = IngestContext(
        "t1",
        "int_notion",
        "notion",
        emits=notion.operation("PageSync").emits,  # type: ignore[union-attr]
        origin="PageSync",
    )
    result = IngestPipeline(registry, sqlite_database).process(context, payloads)
    assert (result.persisted, result.rejected) == (3, 0)
    with sqlite_database.session() as session:
        files = {f.external_id[:8]: f for f in session.exec(select(File)).all()}
    assert files["be633bf1"].source_modified_at.isoformat().startswith("2023-03-08T18:25")
    assert files["be633bf1"].trashed is True and files["b55c9c91"].name is None
