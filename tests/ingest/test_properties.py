"""Property tests: the ingest path never raises on arbitrary JSON payloads; it maps, filters or rejects."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import Emits, Payload
from engine.catalog.registry import Registry
from engine.store.database import Database
from ingest.pipeline import IngestContext, IngestPipeline
from support.directory import DIRECTORY_EMITS, user

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
#: Payloads near the expected shapes are more interesting than random ones: mix recognised keys in.
KEYS = ["id", "node_id", "full_name", "html_url", "owner", "private", "primaryEmail", "name", "groupId", "isBot"]
shaped = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), json_values, max_size=8)
near_user = st.builds(lambda n, extra: {**user(n), **extra}, st.integers(0, 10**6), shaped)
payload_data = json_values | shaped | near_user

ROUTES = [
    ("github_app", "asset", "repository"),
    ("directory_test", "directory_account", "user"),
    ("directory_test", "directory_group", "group"),
    ("directory_test", "directory_membership", "member"),
    ("directory_test", "finding", ""),  # undeclared
]
EMITS: dict[str, Any] = {"github_app": [Emits("asset", "repository")], "directory_test": DIRECTORY_EMITS}
pages = st.lists(st.tuples(st.sampled_from(ROUTES), payload_data, st.sampled_from(["", "deleted", "x"])), max_size=6)


def _split(page: list[Any]) -> dict[str, list[Payload]]:
    out: dict[str, list[Payload]] = {}
    for (definition, schema, variant), data, action in page:
        out.setdefault(definition, []).append(Payload(schema, data, variant, action=action))
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(page=pages)
def test_evaluation_never_raises(registry: Registry, page: list[Any]) -> None:
    pipeline = IngestPipeline(registry)
    for definition, payloads in _split(page).items():
        ctx = IngestContext("t", "i", definition, emits=EMITS[definition])
        for outcome in pipeline.dry_run(ctx, payloads):
            assert outcome.status in ("mapped", "filtered", "rejected")
            assert (outcome.object is not None) == (outcome.status == "mapped")
            assert bool(outcome.reason_code) == (outcome.status == "rejected")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(page=pages)
def test_processing_never_raises_and_accounts_for_every_record(
    registry: Registry, database: Database, page: list[Any]
) -> None:
    pipeline = IngestPipeline(registry, database, batch_size=3)
    for definition, payloads in _split(page).items():
        ctx = IngestContext("t", "i", definition, emits=EMITS[definition])
        result = pipeline.process(ctx, payloads)
        assert result.received == result.filtered + result.persisted + result.rejected
        assert len(result.rejects) == result.rejected
