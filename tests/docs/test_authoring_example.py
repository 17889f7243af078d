"""The complete example on the authoring page is a definition the registry accepts, and its mapping turns the
payload shape its sync yields into a ``contact`` row: the page cannot teach a DSL the engine no longer speaks."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import re2

from engine.authoring.operations import Payload
from engine.catalog.registry import Registry
from ingest.pipeline import IngestContext, IngestPipeline, declared_emits

PAGE = Path(__file__).resolve().parents[2] / "docs" / "authoring.md"
BLOCK = re2.compile(r"(?s)<!-- authoring-example -->\n```python\n(.*?)\n```")


@pytest.fixture
def example(tmp_path: Path) -> ModuleType:
    found = BLOCK.findall(PAGE.read_text())
    assert len(found) == 1, "the authoring page lost its <!-- authoring-example --> block"
    source = tmp_path / "acme_crm_docs_example.py"
    source.write_text(found[0])
    spec = importlib.util.spec_from_file_location("acme_crm_docs_example", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pydantic look their module up while the class is built
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_the_registry_accepts_the_example(example: ModuleType) -> None:
    registry = Registry()
    registry.register(example.definition)
    assert "acme_crm" in registry
    definition = registry.get("acme_crm")
    assert [o.operation_id() for o in definition.operations] == ["HealthCheck", "ContactSync"]
    assert definition.manual_slots() == (example.AcmeApiKey,)


def test_the_example_mapping_makes_contacts_and_drops_archived_ones(example: ModuleType) -> None:
    registry = Registry()
    registry.register(example.definition)
    ctx = IngestContext(
        tenant_id="docs", integration_id="docs", definition_id="acme_crm",
        emits=declared_emits(registry.get("acme_crm")), integration_filter=None, source="direct",
    )
    kept = {"id": "c-1", "name": "Ada Lovelace", "email": "ada@acme.example", "updated_at": "2026-01-01T00:00:00Z"}
    archived = {"id": "c-2", "name": "Old Contact", "archived": True, "updated_at": "2026-01-01T00:00:00Z"}
    payloads = [Payload(schema="contact", variant="person", data=d) for d in (kept, archived)]
    outcomes = IngestPipeline(registry).dry_run(ctx, payloads)
    assert [o.status for o in outcomes] == ["mapped", "filtered"], [o.reason for o in outcomes]
    row = outcomes[0].object
    assert row is not None
    assert (row.external_id, row.full_name, row.email, row.company) == ("c-1", "Ada Lovelace", "ada@acme.example", None)
