"""Schemathesis against the live app (uvicorn on a free port) from its own ``/openapi.json``: no server errors,
and every response matches the spec — with the API key, and without one (every operation then answers 401 or,
for the public ones, what it answers anyone).

Bounded (a handful of examples per operation) so the suite stays fast; it runs in CI like every other test.
``tests/fuzz/test_hostile_input.py`` covers what a spec-driven generator does not send (bytes no client library
writes, routes outside the spec).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from engine.api import create_app
from engine.api.principal import create_api_key
from engine.runtime import Runtime
from support.sample_runtime import start_sample_runtime
from support.server import free_port, serve

CHECKS = (not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance)
EXAMPLES = 8


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    rt = start_sample_runtime(monkeypatch, f"sqlite:///{tmp_path / 'fuzz.db'}", str(tmp_path), migrate=True)
    yield rt
    rt.close()


@pytest.mark.parametrize("with_key", [True, False], ids=["api-key", "no-key"])
def test_no_server_errors_and_responses_match_the_spec(runtime: Runtime, with_key: bool) -> None:
    key, _ = create_api_key(runtime.db, tenant="fuzz", role="server")
    headers = {"Authorization": f"Bearer {key}"} if with_key else {}
    statuses: list[int] = []
    with serve(create_app(runtime), free_port()) as base:
        schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 15

        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def check(case) -> None:  # type: ignore[no-untyped-def]
                response = case.call(base_url=base, headers=headers)
                statuses.append(response.status_code)
                case.validate_response(response, checks=CHECKS)

            check()
    assert len(statuses) >= 4 * len(operations)
    assert max(statuses) < 500
    if not with_key:
        # Without a key only the public operations (catalog, health, OAuth, webhooks, the OIDC documents) answer
        # anything but 401; the rest must have refused every call.
        assert 401 in statuses
