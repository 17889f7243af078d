"""Every worked example of ``docs/data-streams.md`` is a stream the format accepts and the registry registers (its
CEL compiles and writes only fields of its model), and the page has one for each pagination kind."""

from __future__ import annotations

import tomllib
from pathlib import Path

import re2

from definitions.custom_oauth2 import generate, parse_spec
from engine.catalog.registry import Registry
from engine.kit.streams import StreamSpec

PAGE = Path(__file__).resolve().parents[2] / "docs" / "data-streams.md"
BLOCK = re2.compile(r"(?s)<!-- stream-example -->\n```toml\n(.*?)\n```")


def examples() -> list[dict[str, object]]:
    return [tomllib.loads(block) for block in BLOCK.findall(PAGE.read_text())]


def test_the_page_has_one_example_per_pagination_kind() -> None:
    kinds = [StreamSpec.model_validate(example).pagination.kind for example in examples()]  # type: ignore[union-attr]
    assert {"cursor", "link", "offset", "page"} <= set(kinds)


def test_every_example_registers_as_a_stream_of_a_data_definition() -> None:
    spec = parse_spec({
        "id": "docs_example", "name": "Docs example",
        "clientId": {"secret": "DOCS_EXAMPLE_CLIENT_ID"}, "clientSecret": {"secret": "DOCS_EXAMPLE_CLIENT_SECRET"},
        "authorizeUrl": "https://example.com/oauth/authorize", "tokenUrl": "https://example.com/oauth/token",
        "accountUrl": "https://example.com/me", "accountIdPath": "id", "apiUrl": "https://api.example.com",
        "streams": examples(),
    }, "data-streams.md")
    definition = generate(spec).definition()
    Registry().register(definition)
    assert len([op for op in definition.operations if "ingest" in op.execution_paths()]) == len(examples())
