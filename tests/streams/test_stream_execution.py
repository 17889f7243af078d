"""Declared streams run through Tether's one execution path: the real runtime (registry, Keystore, custody, the
executor, the ingest pipeline and its CEL mappings, a migrated database) against the local provider API.

No broker: ``executor.enqueue`` is recorded and each attempt is the worker's ``executor.execute(run_id)``, so a
deferral (a mid-sync 429 with ``Retry-After``) and a retry (a 503) are seen as the outcome the worker turns into a
delayed redelivery of the same run, whose next attempt resumes at the run's checkpoint.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlmodel import col, select

from engine.custody.crypto import generate_master_key
from engine.governor import LocalGovernor
from engine.queue import worker as worker_module
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database
from engine.store.tables import Integration, IntegrationStatus, OperationState, Run, RunStatus
from ingest.models.asset import Asset
from ingest.models.contact import Contact
from support.stream_definition import BASE, GENERATED
from support.stream_server import ProviderApi, Slow


@pytest.fixture
def runtime(database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    env = {
        "TETHER_DATABASE_URL": database.url,
        "TETHER_SECRET_MASTER_KEY": generate_master_key(),
        "TETHER_STATE_DIR": str(tmp_path / "state"),
        "TETHER_BROKER_URL": "",
        "TETHER_DEFINITION_MODULES": "support.stream_definition",
        "TETHER_ENABLED_DEFINITIONS": "streamlab",
        "TETHER_ALLOW_LOOPBACK_PROVIDERS": "1",
        "TETHER_SECRET_STREAMLAB_CLIENT_ID": "lab-client",
        "TETHER_SECRET_STREAMLAB_CLIENT_SECRET": "lab-client-secret",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    worker_module.reset()
    runtime = Runtime.start(Settings())
    monkeypatch.setattr(runtime.executor, "enqueue", lambda run_id, delay, time_limit: None)
    yield runtime
    worker_module.reset()
    runtime.close()


def connect(runtime: Runtime) -> str:
    with runtime.db.session() as session:
        integration = Integration(
            tenant_id="t1",
            owner_id="u1",
            definition_id="streamlab",
            status=IntegrationStatus.connected,
            provider_data={"connection": "StreamlabOAuth"},
        )
        session.add(integration)
    token = GENERATED.slot(access_token=SecretStr("lab-access-token"), scopes=())  # type: ignore[call-arg]
    runtime.keystore.save(integration.id, token)
    return integration.id


def run_row(runtime: Runtime, run_id: str) -> Run:
    with runtime.db.session() as session:
        run = session.get(Run, run_id)
    assert run is not None
    return run


def cursor_of(runtime: Runtime, integration_id: str, operation: str) -> Any:
    with runtime.db.session() as session:
        state = session.exec(
            select(OperationState).where(
                OperationState.integration_id == integration_id, OperationState.operation == operation
            )
        ).first()
    return None if state is None else state.cursor


def rows(runtime: Runtime, model: Any, integration_id: str) -> list[Any]:
    with runtime.db.session() as session:
        return list(
            session.exec(select(model).where(model.integration_id == integration_id).order_by(col(model.id))).all()
        )


async def start(runtime: Runtime, integration_id: str, operation: str) -> str:
    return await runtime.executor.dispatch(integration_id, operation, trigger="api")


def test_each_stream_is_an_operation_of_the_generated_definition(runtime: Runtime) -> None:
    definition = runtime.registry.get("streamlab")
    streams = {op.operation_id(): op for op in definition.operations if "ingest" in op.execution_paths()}
    assert sorted(streams) == ["ContactSync", "PageSync", "ProjectSync", "RepoSync"]
    assert streams["ContactSync"].emits[0].schema == "contact" and streams["RepoSync"].policy.reconcile
    assert runtime.registry.mapping("streamlab", "asset", "repository") is not None


@pytest.mark.parametrize(
    ("operation", "path", "pages", "model", "expected"),
    [
        (
            "RepoSync",
            "/user/repos",
            ["github_repos_page1", "github_repos_page2"],
            Asset,
            ["acme/tether", "acme/billing", "octocat/Spoon-Knife"],
        ),
        (
            "PageSync",
            "/v1/search",
            ["notion_search_page1", "notion_search_page2"],
            Asset,
            [
                "59833787-2cf9-4fdf-8782-e53db20768a5",
                "be633bf1-dfa0-436d-b259-571129a590e5",
                "b55c9c91-384d-452b-81db-d1ef79372b75",
            ],
        ),
        (
            "ProjectSync",
            "/rest/api/3/project/search",
            ["jira_projects_page1", "jira_projects_page2"],
            Asset,
            ["Example", "Alphabetical", "Kanban"],
        ),
        (
            "ContactSync",
            "/v2/contacts",
            ["harvest_contacts_page1", "harvest_contacts_page2"],
            Contact,
            ["Jane Doe", "Richard Roe"],
        ),
    ],
)
async def test_every_pagination_kind_ingests_its_pages_into_the_model(
    runtime: Runtime, api: ProviderApi, operation: str, path: str, pages: list[str], model: Any, expected: list[str]
) -> None:
    integration_id = connect(runtime)
    api.answer(path, *pages)
    run_id = await start(runtime, integration_id, operation)
    outcome = await runtime.executor.execute(run_id)
    assert outcome.status == RunStatus.succeeded, (outcome.error_code, outcome.error_message)
    assert all(seen.authorization == "Bearer lab-access-token" for seen in api.on(path))
    names = [row.full_name if model is Contact else row.name for row in rows(runtime, model, integration_id)]
    assert names == expected
    assert run_row(runtime, run_id).records_ingested == len(expected)


async def test_mapped_fields_land_as_the_provider_documents_them(runtime: Runtime, api: ProviderApi) -> None:
    integration_id = connect(runtime)
    api.answer("/v2/contacts", "harvest_contacts_page1", "harvest_contacts_page2")
    await runtime.executor.execute(await start(runtime, integration_id, "ContactSync"))
    jane = rows(runtime, Contact, integration_id)[0]
    assert (jane.external_id, jane.email, jane.phone, jane.company, jane.title) == (
        "4706479",
        "janedoe@example.com",
        "(203) 697-8885",
        "123 Industries",
        "Owner",
    )


async def test_a_mid_sync_429_defers_the_run_which_resumes_at_its_checkpoint(
    runtime: Runtime, api: ProviderApi
) -> None:
    # The rate governor learns the 429's pause for every caller of this app; its clock is the test's, so the
    # redelivery (which the worker sends after ``retry_in``) is seen after the pause, with no real wait.
    now = [1000.0]
    runtime.executor.context.__dict__["governor"] = LocalGovernor(clock=lambda: now[0])
    integration_id = connect(runtime)
    api.answer("/user/repos", "github_repos_page1", "github_secondary_rate_limit")
    run_id = await start(runtime, integration_id, "RepoSync")
    first = await runtime.executor.execute(run_id)
    assert (first.status, first.deferred, first.retry_in, first.error_code) == (
        RunStatus.queued,
        True,
        7.0,
        "rate_limited",
    )
    deferred = run_row(runtime, run_id)
    assert deferred.checkpoint["position"] == {"url": f"{BASE}/user/repos?per_page=2&page=2"}
    assert [a.name for a in rows(runtime, Asset, integration_id)] == ["acme/tether", "acme/billing"]  # page 1 kept
    assert cursor_of(runtime, integration_id, "RepoSync") is None  # no success, no cursor

    api.reset()
    api.answer("/user/repos", "github_repos_page2")
    now[0] += first.retry_in + 1  # the redelivery comes after the deferral
    second = await runtime.executor.execute(run_id)
    assert second.status == RunStatus.succeeded and run_row(runtime, run_id).attempts == 2
    [resumed] = api.on("/user/repos")  # page 1 is not asked for again
    assert resumed.query == {"per_page": "2", "page": "2"}
    assert [a.name for a in rows(runtime, Asset, integration_id)] == [
        "acme/tether",
        "acme/billing",
        "octocat/Spoon-Knife",
    ]
    assert cursor_of(runtime, integration_id, "RepoSync") == "2024-05-03T10:00:00Z"


async def test_an_interrupted_run_is_retried_from_its_checkpoint(runtime: Runtime, api: ProviderApi) -> None:
    integration_id = connect(runtime)
    api.answer("/rest/api/3/project/search", "jira_projects_page1", (503, {}, {"errorMessages": ["unavailable"]}))
    run_id = await start(runtime, integration_id, "ProjectSync")
    first = await runtime.executor.execute(run_id)
    assert first.status == RunStatus.queued and not first.deferred and first.retry_in is not None
    api.reset()
    api.answer("/rest/api/3/project/search", "jira_projects_page2")
    assert (await runtime.executor.execute(run_id)).status == RunStatus.succeeded
    assert [r.query for r in api.on("/rest/api/3/project/search")] == [{"startAt": "2", "maxResults": "2"}]
    assert [a.name for a in rows(runtime, Asset, integration_id)] == ["Example", "Alphabetical", "Kanban"]
    assert run_row(runtime, run_id).records_ingested == 3  # both attempts' records, counted once each


async def test_a_run_whose_worker_stopped_mid_sync_resumes_at_its_checkpoint(
    runtime: Runtime, api: ProviderApi
) -> None:
    """The worker stops (its task is cancelled, as at shutdown) while page 2 is in flight: the run is left running,
    the reaper finds its heartbeat stale and queues it again, and the next attempt starts at page 2."""
    integration_id = connect(runtime)
    api.answer("/v2/contacts", "harvest_contacts_page1", Slow("harvest_contacts_page2", 3.0))
    run_id = await start(runtime, integration_id, "ContactSync")
    attempt = asyncio.create_task(runtime.executor.execute(run_id))
    bound = time.monotonic() + 30  # against a hang, not a timing assertion
    while run_row(runtime, run_id).checkpoint is None or len(api.on("/v2/contacts")) < 2:
        assert time.monotonic() < bound and not attempt.done()
        await asyncio.sleep(0.02)
    attempt.cancel()
    with pytest.raises(asyncio.CancelledError):
        await attempt
    assert run_row(runtime, run_id).status == RunStatus.running
    assert [c.full_name for c in rows(runtime, Contact, integration_id)] == ["Jane Doe"]

    [recovered] = runtime.executor.reap_stale(stale_after=0)
    assert (recovered.status, recovered.error_code) == (RunStatus.queued, "worker_lost")
    api.reset()
    api.answer("/v2/contacts", "harvest_contacts_page2")
    outcome = await runtime.executor.execute(run_id)
    assert outcome.status == RunStatus.succeeded
    assert [r.query for r in api.on("/v2/contacts")] == [{"per_page": "1", "page": "2"}]
    assert [c.full_name for c in rows(runtime, Contact, integration_id)] == ["Jane Doe", "Richard Roe"]


async def test_the_incremental_cursor_advances_only_when_a_run_succeeds(runtime: Runtime, api: ProviderApi) -> None:
    integration_id = connect(runtime)
    api.answer("/user/repos", "github_repos_page1", (401, {}, {"message": "Bad credentials"}))
    failed_id = await start(runtime, integration_id, "RepoSync")
    failed = await runtime.executor.execute(failed_id)
    assert (failed.status, failed.error_code) == (RunStatus.failed, "unauthorized")
    assert cursor_of(runtime, integration_id, "RepoSync") is None

    api.reset()
    api.answer("/user/repos", "github_repos_page1", "github_repos_page2")
    await runtime.executor.execute(await start(runtime, integration_id, "RepoSync"))
    assert api.on("/user/repos")[0].query["since"] == "2024-01-01T00:00:00Z"  # a new run starts from the start
    assert cursor_of(runtime, integration_id, "RepoSync") == "2024-05-03T10:00:00Z"

    api.reset()
    api.answer("/user/repos", (200, {}, []))
    await runtime.executor.execute(await start(runtime, integration_id, "RepoSync"))
    assert api.on("/user/repos")[0].query["since"] == "2024-05-03T10:00:00Z"


async def test_a_repeated_cursor_stalls_the_run_naming_the_fault(runtime: Runtime, api: ProviderApi) -> None:
    integration_id = connect(runtime)
    page1 = api_body("notion_search_page1")
    page2 = {**api_body("notion_search_page2"), "next_cursor": page1["next_cursor"], "has_more": True}
    api.answer("/v1/search", (200, {}, page1), (200, {}, page2))
    run_id = await start(runtime, integration_id, "PageSync")
    outcome = await runtime.executor.execute(run_id)
    run = run_row(runtime, run_id)
    assert (outcome.status, run.error_code) == (RunStatus.stalled, "pagination_loop")
    assert "repeated a cursor" in run.error_message and len(api.on("/v1/search")) == 2


async def test_has_more_without_a_cursor_stalls_the_run_and_keeps_the_cursor(
    runtime: Runtime, api: ProviderApi
) -> None:
    """Early end of pagination (issue 23): the provider says more follow and gives no cursor; the run is not a
    success, whatever it stored of the first page, and its incremental cursor does not move."""
    integration_id = connect(runtime)
    api.answer("/v1/search", (200, {}, {**api_body("notion_search_page1"), "next_cursor": None}))
    run_id = await start(runtime, integration_id, "PageSync")
    outcome = await runtime.executor.execute(run_id)
    run = run_row(runtime, run_id)
    assert (outcome.status, run.status, run.error_code) == (RunStatus.stalled, "stalled", "pagination_short")
    assert run.finished_at is not None and cursor_of(runtime, integration_id, "PageSync") is None


def api_body(name: str) -> Any:
    from support.stream_server import fixture

    return fixture(name)["body"]
