"""The model on the authoring page ("Models of your own") loads as a host package: its ``ticket`` joins the catalog
with the fields the page says a mapping may write."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import re2

from ingest.catalog import catalog
from ingest.setup import configure

PAGE = Path(__file__).resolve().parents[2] / "docs" / "authoring.md"
BLOCK = re2.compile(r"(?s)<!-- host-model-example -->\n```python\n(.*?)\n```")


@pytest.fixture
def docs_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    found = BLOCK.findall(PAGE.read_text())
    assert len(found) == 1, "the authoring page lost its <!-- host-model-example --> block"
    (tmp_path / "helpdesk_docs_example.py").write_text(found[0])
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "helpdesk_docs_example"
    configure([])
    sys.modules.pop("helpdesk_docs_example", None)


def test_the_page_model_joins_the_catalog(docs_package: str) -> None:
    configure([docs_package])
    spec = catalog()["ticket"]
    assert spec.model.__module__ == docs_package and spec.table == "host_ticket"
    assert (spec.allowed, spec.upsert, spec.required) == (
        ("external_id", "title", "status"),
        ("external_id",),
        (
            "external_id",
            "title",
        ),
    )
