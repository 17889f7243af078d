"""Runs are charged to their provider app's budget: past it a run is deferred through the queue before the provider
is called, another tenant's run meets the same budget, and a provider's 429 pauses everyone."""

from __future__ import annotations

from engine.store.tables import RunStatus


async def test_a_run_past_the_budget_is_deferred_and_the_provider_never_sees_the_extra_calls(world, provider) -> None:
    first = world.connect("t1")
    executor = world.runtime.executor
    run_id = await executor.dispatch(first, "Calls", trigger="api", config={"url": f"{provider.url}/ok", "n": 10})
    outcome = await executor.execute(run_id)
    assert outcome.status == RunStatus.queued and outcome.deferred
    assert outcome.error_code == "rate_limited" and outcome.retry_in is not None and outcome.retry_in > 0
    assert provider.hits == {"ok": 4}  # the burst of the declared limit, and not one call more

    other = world.connect("t2")
    run_id = await executor.dispatch(other, "Calls", trigger="api", config={"url": f"{provider.url}/ok", "n": 1})
    outcome = await executor.execute(run_id)
    assert outcome.deferred and provider.hits == {"ok": 4}  # same app, same budget: spent


async def test_a_providers_429_pauses_the_other_tenants_runs_without_calling_it(world, provider) -> None:
    executor = world.runtime.executor
    first, second = world.connect("t1"), world.connect("t2")
    run_id = await executor.dispatch(first, "Calls", trigger="api", config={"url": f"{provider.url}/limited"})
    outcome = await executor.execute(run_id)
    assert outcome.deferred and outcome.retry_in == 120.0  # the provider's own Retry-After
    run_id = await executor.dispatch(second, "Calls", trigger="api", config={"url": f"{provider.url}/ok"})
    outcome = await executor.execute(run_id)
    assert outcome.deferred and outcome.retry_in is not None and outcome.retry_in > 100
    assert provider.hits == {"limited": 1}


async def test_calls_within_the_budget_succeed(world, provider) -> None:
    integration = world.connect("t1")
    executor = world.runtime.executor
    run_id = await executor.dispatch(integration, "Calls", trigger="api", config={"url": f"{provider.url}/ok", "n": 3})
    outcome = await executor.execute(run_id)
    assert outcome.status == RunStatus.succeeded and outcome.result == {"calls": 3}
