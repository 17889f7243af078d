"""Schemathesis against Tether's own OpenAPI spec: no 500s, and every response matches the spec.

Bounded (a handful of examples per operation) so the suite stays fast; it runs in CI like every other test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from engine.api import create_app
from engine.api.principal import create_api_key
from engine.crypto import generate_master_key
from engine.runtime import Runtime
from engine.settings import Settings


def test_no_server_errors_and_responses_match_the_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_SECRET_MASTER_KEY", generate_master_key())
    monkeypatch.setenv("TETHER_SAMPLE_CLIENT_ID", "sample")
    monkeypatch.setenv("TETHER_SECRET_SAMPLE_CLIENT_SECRET", "sample-secret")
    settings_ = Settings(
        database_url=f"sqlite:///{tmp_path / 'fuzz.db'}", definition_modules="support.sample_definition",
        state_dir=str(tmp_path),
    )
    runtime = Runtime.start(settings_, migrate=True)
    key, _ = create_api_key(runtime.db, tenant="fuzz", role="server")
    headers = {"Authorization": f"Bearer {key}"}
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(runtime))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15

    calls: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case) -> None:  # type: ignore[no-untyped-def]
            calls.append(case.method)
            response = case.call(headers=headers)
            assert response.status_code < 500, f"{case.method} {case.formatted_path} -> {response.status_code}"
            case.validate_response(
                response, checks=(status_code_conformance, content_type_conformance, response_schema_conformance)
            )

        check()
    assert len(calls) >= 4 * len(operations)
    runtime.close()
