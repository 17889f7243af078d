"""Run providers' published example payloads through a definition's real mappings (the ingest pipeline's dry run).

Shared by the ``test_*_published*`` suites: every record must be mapped (or, for a removal, give its keys), none
rejected or filtered out, so a field name the provider spells differently or a null it sends shows up as a failure
rather than as a silently lost record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine import REMOVE, Payload
from engine.catalog.registry import Registry
from ingest.pipeline import IngestContext, IngestPipeline

FIXTURES = Path(__file__).parents[1] / "fixtures"


def recorded(definition_id: str, name: str, *, sources: tuple[str, ...]) -> dict[str, Any]:
    """A published example under ``tests/fixtures/<definition>/published/``; it must name where it was copied from."""
    body = json.loads((FIXTURES / definition_id / "published" / f"{name}.json").read_text())
    assert str(body.get("source", "")).startswith(sources), "a published example names its source"
    return dict(body)


def outcomes(definition: Any, operation: Any, payloads: list[Payload]) -> list[Any]:
    """The dry run's outcome for each payload, through the registry's compiled mappings for ``operation``."""
    registry = Registry()
    registry.register(definition)
    ctx = IngestContext(
        tenant_id="t",
        integration_id="i",
        definition_id=definition.id,
        emits=operation.emits,
        origin=operation.operation_id(),
    )
    return list(IngestPipeline(registry).dry_run(ctx, payloads))


def land(definition: Any, operation: Any, payloads: list[Payload]) -> list[Any]:
    """Map every payload; each must be mapped, or for a removal (``REMOVE``) give the keys its row is removed by;
    none may be rejected or filtered out. A removal's entry is its key tuple."""
    results = outcomes(definition, operation, payloads)
    assert [o.reason for o in results if o.status == "rejected"] == []
    rows = []
    for payload, outcome in zip(payloads, results, strict=True):
        assert outcome.status == "mapped" and outcome.remove == (payload.action == REMOVE), outcome.reason
        # The generated ingest type, validated (what persistence receives), or the removal's keys.
        rows.append(outcome.keys if outcome.remove else outcome.object)
    return rows
