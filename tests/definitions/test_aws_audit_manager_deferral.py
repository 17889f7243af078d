"""A throttled Audit Manager sync goes through Tether's one execution path: deferred, then retried and persisted.

The runtime is real (built-in catalog, operator config from the environment, a migrated database, the Keystore, the
client the definition builds). Audit Manager is botocore's ``Stubber`` on that client (moto has no Audit Manager):
the first ``ListAssessments`` is answered with ``ThrottlingException``, every other call with the model-checked
fixtures of ``test_aws_audit_manager``. As in the Security Hub deferral test, there is no broker: ``executor.enqueue``
records the dispatch and the deferral is observed as the ``dramatiq.Retry`` the worker's actor raises.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dramatiq import Retry
from sqlmodel import select
from tests.definitions import test_aws_audit_manager as audit_tests
from tests.definitions.test_aws_security_hub_deferral import (
    connect_with_keys,
    record_executor,
    run_row,
    started_runtime,
)

from definitions.aws_security_hub.aws import DEFAULT_RETRY_AFTER
from definitions.aws_security_hub.client import AwsApi, SecurityHubClient
from engine import ClientContext
from engine.queue import worker as worker_module
from engine.runtime import Runtime
from engine.store.database import Database
from engine.store.tables import RunStatus
from ingest.models.finding import Finding

Clock = audit_tests.Clock
Script = audit_tests.Script


@pytest.fixture
def runtime(database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    with started_runtime(database, tmp_path, monkeypatch, endpoint=None) as runtime:  # AWS is the stub only
        yield runtime


def stub_audit_manager(monkeypatch: pytest.MonkeyPatch, clock: Clock) -> list[Script]:
    """The client the runtime builds gets a ``Stubber`` scripted with a throttled run and its retry."""
    scripts: list[Script] = []
    build = SecurityHubClient.build

    def stubbed_build(self: SecurityHubClient, ctx: ClientContext) -> AwsApi:
        api = build(self, ctx)
        script = Script(api, clock).throttled_then_read()
        script.stub.activate()
        scripts.append(script)
        return api

    monkeypatch.setattr(SecurityHubClient, "build", stubbed_build)
    return scripts


async def test_throttled_assessment_sync_is_deferred_then_retried(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    integration_id = connect_with_keys(runtime)
    executor = runtime.executor
    enqueued, outcomes = record_executor(runtime, monkeypatch)
    scripts = stub_audit_manager(monkeypatch, clock)

    run_id = await executor.dispatch(integration_id, "AuditAssessmentSync", trigger="api")
    assert [(r, d) for r, d, _ in enqueued.calls] == [(run_id, None)]

    # First attempt: ListAssessments is throttled → the run is deferred by the broker's delayed retry.
    with pytest.raises(Retry) as retry:
        await worker_module._execute_run(run_id)
    [first] = outcomes
    assert first.deferred and first.status == RunStatus.queued and first.error_code == "rate_limited"
    assert first.retry_in == DEFAULT_RETRY_AFTER and retry.value.delay == int(DEFAULT_RETRY_AFTER * 1000)
    deferred = run_row(runtime, run_id)
    assert (deferred.status, deferred.attempts, deferred.finished_at) == (RunStatus.queued, 1, None)
    assert "Rate exceeded" not in deferred.error_message
    with runtime.db.session() as session:
        assert session.exec(select(Finding).where(Finding.integration_id == integration_id)).all() == []

    # The redelivered message: the same run, now reading both pages of assessments, persisting each control.
    await worker_module._execute_run(run_id)
    assert await worker_module.finishes_recorded() == 0  # the actor returns before its success is recorded
    second = outcomes[1]
    assert (second.status, second.deferred) == (RunStatus.succeeded, False)
    assert second.result["persisted"] == 3
    assert (run_row(runtime, run_id).status, run_row(runtime, run_id).attempts) == (RunStatus.succeeded, 2)
    [script] = scripts  # one client, reused by the retry
    script.stub.assert_no_pending_responses()
    with runtime.db.session() as session:
        rows = session.exec(select(Finding).where(Finding.integration_id == integration_id)).all()
    assert {row.source for row in rows} == {"audit_manager"} and len(rows) == 3
    assert "CC6.1 - S3 buckets block public access" in {row.title for row in rows}
