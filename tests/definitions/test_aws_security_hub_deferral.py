"""A throttled AWS Security Hub FindingSync goes through Tether's one execution path: deferred, then retried.

The runtime is real (built-in catalog, operator config from the environment, a migrated database, the Keystore) and
AWS is moto in server mode on 127.0.0.1. moto never throttles, so the first ``GetFindings`` of the run is answered
with botocore's ``ClientError`` ``ThrottlingException`` before it leaves the client; every other call reaches moto.
No broker: ``executor.enqueue`` records the dispatch, and the deferral is observed where it reaches the broker, the
``dramatiq.Retry`` the worker's actor raises (the ``Retries`` middleware re-enqueues the message with its delay).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from dramatiq import Retry
from pydantic import SecretStr
from sqlmodel import select
from tests.definitions import test_aws_security_hub as hub_tests

from definitions.aws_security_hub.aws import DEFAULT_RETRY_AFTER
from definitions.aws_security_hub.slots import AwsAccessKeys
from engine.custody.crypto import generate_master_key
from engine.queue import worker as worker_module
from engine.runs.execution import RunOutcome
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database
from engine.store.tables import Integration, IntegrationStatus, OperationState, Run, RunStatus
from ingest.models.finding import Finding

# The definition's own moto fixtures: one server per module (`moto_url`), reset before each test (`endpoint`).
moto_url = hub_tests.moto_url
endpoint = hub_tests.endpoint
DEFAULT_ACCOUNT = hub_tests.DEFAULT_ACCOUNT
import_findings = hub_tests.import_findings

CUSTOMER_KEY = "AKIACUSTOMERKEYS001"  # moto's default account, as in the definition's own tests


@dataclass
class Enqueued:
    calls: list[tuple[str, float | None, float | None]] = field(default_factory=list)

    def __call__(self, run_id: str, delay: float | None, time_limit: float | None) -> None:
        self.calls.append((run_id, delay, time_limit))


@contextmanager
def started_runtime(database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                    endpoint: str | None) -> Iterator[Runtime]:
    """The built-in runtime with only this definition enabled; ``endpoint`` is the operator's AWS endpoint."""
    env = {
        "TETHER_DATABASE_URL": database.url,
        "TETHER_SECRET_MASTER_KEY": generate_master_key(),
        "TETHER_STATE_DIR": str(tmp_path / "state"),
        "TETHER_BROKER_URL": "",
        "TETHER_ENABLED_DEFINITIONS": "aws_security_hub",  # start-up fails, naming the variable, if one is missing
        "TETHER_SECRET_AWS_SECURITY_HUB_EXTERNAL_ID_SECRET": "operator-external-id-secret",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if endpoint is None:
        monkeypatch.delenv("TETHER_AWS_SECURITY_HUB_ENDPOINT_URL", raising=False)
    else:
        monkeypatch.setenv("TETHER_AWS_SECURITY_HUB_ENDPOINT_URL", endpoint)
    worker_module.reset()
    runtime = Runtime.start(Settings())
    worker_module.set_runtime(runtime)
    try:
        yield runtime
    finally:
        worker_module.reset()
        runtime.close()


@pytest.fixture
def runtime(database: Database, endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    with started_runtime(database, tmp_path, monkeypatch, endpoint) as runtime:
        yield runtime


def connect_with_keys(runtime: Runtime) -> str:
    with runtime.db.session() as session:
        integration = Integration(tenant_id="t1", owner_id="u1", definition_id="aws_security_hub",
                                  status=IntegrationStatus.connected,
                                  provider_data={"connection": "AwsKeysConnection"})
        session.add(integration)
    keys = AwsAccessKeys(access_key_id=CUSTOMER_KEY, secret_access_key=SecretStr("x"))
    runtime.keystore.save(integration.id, keys)  # type: ignore[arg-type]
    return integration.id


def throttle_first_get_findings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The first ``GetFindings`` is throttled the way AWS throttles it; every call is recorded by name."""
    calls: list[str] = []
    real = BaseClient._make_api_call

    def make_api_call(client: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
        calls.append(operation_name)
        if operation_name == "GetFindings" and calls.count("GetFindings") == 1:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
                               "ResponseMetadata": {"HTTPStatusCode": 429, "HTTPHeaders": {}}}, operation_name)
        return real(client, operation_name, api_params)

    monkeypatch.setattr(BaseClient, "_make_api_call", make_api_call)
    return calls


def run_row(runtime: Runtime, run_id: str) -> Run:
    with runtime.db.session() as session:
        run = session.get(Run, run_id)
    assert run is not None
    return run


def record_executor(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> tuple[Enqueued, list[RunOutcome]]:
    """The executor's hand-offs to the queue and the outcome of each attempt, recorded."""
    executor = runtime.executor
    enqueued = Enqueued()
    monkeypatch.setattr(executor, "enqueue", enqueued)
    outcomes: list[RunOutcome] = []
    execute = executor.execute

    async def recording_execute(run_id: str, **kwargs: Any) -> RunOutcome:
        outcome = await execute(run_id, **kwargs)
        outcomes.append(outcome)
        return outcome

    monkeypatch.setattr(executor, "execute", recording_execute)
    return enqueued, outcomes


async def test_throttled_finding_sync_is_deferred_then_retried(
    runtime: Runtime, endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    import_findings(endpoint, DEFAULT_ACCOUNT, ["control", "detection"], now)
    integration_id = connect_with_keys(runtime)
    executor = runtime.executor
    enqueued, outcomes = record_executor(runtime, monkeypatch)
    aws_calls = throttle_first_get_findings(monkeypatch)

    # Dispatch: a queued run, handed to the (recorded) queue once, with no delay.
    run_id = await executor.dispatch(integration_id, "FindingSync", trigger="api")
    assert [(r, d) for r, d, _ in enqueued.calls] == [(run_id, None)]
    assert run_row(runtime, run_id).status == RunStatus.queued

    # First attempt, as the worker's actor runs it: throttled → deferred, and the actor asks the broker for a
    # delayed redelivery of the same message (dramatiq's Retries middleware honours Retry.delay, in ms).
    with pytest.raises(Retry) as retry:
        await worker_module._execute_run(run_id)
    [first] = outcomes
    assert first.deferred and first.status == RunStatus.queued and first.error_code == "rate_limited"
    assert first.retry_in == DEFAULT_RETRY_AFTER > 0
    assert retry.value.delay == int(first.retry_in * 1000)
    deferred = run_row(runtime, run_id)
    assert (deferred.status, deferred.error_code, deferred.attempts) == (RunStatus.queued, "rate_limited", 1)
    assert deferred.finished_at is None
    assert "Rate exceeded" not in deferred.error_message and DEFAULT_ACCOUNT not in deferred.error_message
    assert len(enqueued.calls) == 1  # the deferral goes through the broker's retry, not a second dispatch
    with runtime.db.session() as session:
        assert session.exec(select(Finding).where(Finding.integration_id == integration_id)).all() == []
        state = session.exec(select(OperationState).where(OperationState.integration_id == integration_id)).first()
        assert state is None or state.cursor is None  # a failed attempt saves no cursor

    # The redelivered message: the same run, claimed again, now reads moto's findings and persists them.
    await worker_module._execute_run(run_id)  # no Retry: the message is acknowledged
    assert await worker_module.finishes_recorded() == 0  # the actor returns before its success is recorded
    second = outcomes[1]
    assert (second.status, second.deferred, second.retry_in) == (RunStatus.succeeded, False, None)
    assert second.result["persisted"] == 2
    done = run_row(runtime, run_id)
    assert (done.status, done.error_code, done.attempts) == (RunStatus.succeeded, "", 2)
    assert aws_calls.count("GetFindings") == 2
    with runtime.db.session() as session:
        rows = session.exec(select(Finding).where(Finding.integration_id == integration_id)).all()
        state = session.exec(select(OperationState).where(OperationState.integration_id == integration_id)).one()
    assert len(rows) == 2 and all(row.definition_id == "aws_security_hub" for row in rows)
    assert "S3 general purpose buckets should block public access" in {row.title for row in rows}
    assert state.cursor is not None and datetime.fromisoformat(state.cursor) >= now
