"""Streams in definition files: loaded like any data definition (``TETHER_DEFINITIONS_DIR``), their URLs held to the
registry's ``https_only`` rule, and a broken stream stopping start-up with the file, the line and the rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from definitions.custom_oauth2 import DefinitionFileError, data_definitions
from engine.catalog.registry import Registry
from engine.errors import DefinitionError

LAB = Path(__file__).resolve().parents[1] / "fixtures" / "streams" / "streamlab.toml"


def copy(tmp_path: Path, *edits: tuple[str, str]) -> Path:
    text = LAB.read_text()
    for old, new in edits:
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "streamlab.toml"
    path.write_text(text)
    return path


def test_a_streams_file_loads_into_a_definition_with_one_ingest_operation_per_stream(tmp_path: Path) -> None:
    [definition] = data_definitions([copy(tmp_path)], []).definitions
    Registry().register(definition)
    ingest = [op.operation_id() for op in definition.operations if "ingest" in op.execution_paths()]
    assert ingest == ["RepoSync", "PageSync", "ProjectSync", "ContactSync"]
    assert {(m.schema, m.variant) for m in definition.mappings} == {
        ("asset", "repository"),
        ("asset", "page"),
        ("asset", "project"),
        ("contact", "contact"),
    }


def test_the_api_url_is_held_to_https(tmp_path: Path) -> None:
    path = copy(tmp_path, ('apiUrl = "https://streamlab.example"', 'apiUrl = "http://streamlab.example"'))
    [definition] = data_definitions([path], []).definitions
    with pytest.raises(DefinitionError) as refused:
        Registry().register(definition)
    assert refused.value.rule == "https_only"


def test_a_broken_stream_names_the_file_the_line_and_the_rule(tmp_path: Path) -> None:
    path = copy(
        tmp_path,
        ('kind = "link", pageSizeParam', 'kind = "links", pageSizeParam'),
        ('records = "values"', 'recrds = "values"'),
    )
    with pytest.raises(DefinitionFileError) as refused:
        data_definitions([path], [])
    lines = str(refused.value).splitlines()
    assert lines[0].startswith(f"{path}:19: streams.0.pagination:") and lines[0].endswith("[union_tag_invalid]")
    assert (
        lines[1] == f"{path}:63: streams.2.recrds: the format has no such key (did you mean 'records'?) "
        "[extra_forbidden]"
    )


def test_two_streams_of_one_name_are_refused(tmp_path: Path) -> None:
    path = copy(tmp_path, ('name = "ContactSync"', 'name = "RepoSync"'))
    with pytest.raises(DefinitionFileError) as refused:
        data_definitions([path], [])
    assert "two streams share a name" in str(refused.value) and "[stream_names]" in str(refused.value)
