"""The client against the sandbox provider of the embedded default (definition ``sandbox``): the typed-in API key
``sbx_key_acme``, a queued ``Sync`` run by the embedded worker, the acme seed read back through ``iter_records``,
a mirror built from ``iter_changes`` alone equal to what the records API lists, and a failed inline run raised as the
typed error carrying the run."""

from __future__ import annotations

import time

import httpx
import pytest

from tether_client import AsyncClient, Client, InlineResponse, ProviderFailed, QueuedResponse, RateLimited

from .conftest import Live

#: The acme seed's counts of five of its schemas, as tests/definitions/test_sandbox.py has them.
ACME = {"directory_account": 12, "directory_group": 4, "directory_membership": 12, "asset": 6, "finding": 8}


def test_sync_the_sandbox_and_mirror_it_from_the_change_feed(live_sandbox: Live) -> None:
    with Client(live_sandbox.base, api_key=live_sandbox.key) as tether:
        iid = tether.create_integration("sandbox", owner_id="alice").id
        connected = tether.submit_credential(iid, "SandboxApiKey", {"api_key": "sbx_key_acme"})
        assert (connected.status, connected.connection) == ("connected", "SandboxKey")
        for run in tether.iter_runs(iid):  # connecting may have queued a first sync: let it settle
            assert tether.get_run(run.id, wait=60).status == "succeeded"
        started = tether.run(iid, "Sync")
        assert isinstance(started, QueuedResponse)
        assert tether.get_run(started.run_id, wait=60).status == "succeeded"

        records = {schema: list(tether.iter_records(schema, integration_id=iid, limit=5)) for schema in ACME}
        assert {schema: len(rows) for schema, rows in records.items()} == ACME
        mirror: dict[tuple[str, int], dict[str, object]] = {}
        for change in tether.iter_changes(integration_id=iid, limit=7):
            if change.op == "remove":
                mirror.pop((change.schema_, change.record_id), None)
            else:
                assert change.record is not None
                mirror[(change.schema_, change.record_id)] = change.record
        listed = {(schema, row["id"]) for schema, rows in records.items() for row in rows}
        assert {key for key in mirror if key[0] in ACME} == listed


async def test_the_async_client_syncs_the_sandbox(live_sandbox: Live) -> None:
    async with AsyncClient(live_sandbox.base, api_key=live_sandbox.key) as tether:
        iid = (await tether.create_integration("sandbox", owner_id="bob")).id
        await tether.submit_credential(iid, "SandboxApiKey", {"api_key": "sbx_key_acme"})
        async for run in tether.iter_runs(iid):
            assert (await tether.get_run(run.id, wait=60)).status == "succeeded"
        started = await tether.run(iid, "Sync")
        assert isinstance(started, QueuedResponse)
        assert (await tether.get_run(started.run_id, wait=60)).status == "succeeded"
        accounts = [r async for r in tether.iter_records("directory_account", owner_id="bob")]
        assert len(accounts) == ACME["directory_account"]


def test_a_failed_inline_run_raises_with_its_run(live_sandbox: Live) -> None:
    """The sandbox armed to answer 500, then 429: the inline ``HealthCheck`` fails, and the client raises the typed
    error of the run's stable code, carrying the run's record (the same the runs API then shows)."""
    control = httpx.Client(
        base_url=f"{live_sandbox.base}/sandbox/control/accounts/acme",
        headers={"Authorization": f"Bearer {live_sandbox.key}"},
        timeout=30,
    )
    with Client(live_sandbox.base, api_key=live_sandbox.key) as tether, control:
        iid = tether.create_integration("sandbox", owner_id="carol").id
        tether.submit_credential(iid, "SandboxApiKey", {"api_key": "sbx_key_acme"})
        for run in tether.iter_runs(iid):
            assert tether.get_run(run.id, wait=60).status == "succeeded"
        ok = tether.run(iid, "HealthCheck")
        assert isinstance(ok, InlineResponse) and ok.result == {"ok": True, "account": "acme"}

        assert control.post("/fail", json={"status": 500, "count": 1}).status_code == 200
        with pytest.raises(ProviderFailed) as failed:
            tether.run(iid, "HealthCheck")
        run = failed.value.run
        assert run is not None and (run.operation, run.status, run.error_code) == (
            "HealthCheck",
            "failed",
            failed.value.code,
        )
        assert failed.value.status == 502 and tether.get_run(run.id).status == "failed"

        assert control.post("/fail", json={"status": 429, "count": 1, "retry_after": 1}).status_code == 200
        with pytest.raises(RateLimited) as limited:
            tether.run(iid, "HealthCheck")
        assert limited.value.code == "rate_limited" and limited.value.run is not None
        assert limited.value.run.status == "failed" and limited.value.run.id != run.id
        # The provider's Retry-After pauses the sandbox's app for every caller (engine.governor): until it passes,
        # a call is refused before it is sent; then the armed failures are used up and the check passes again.
        deadline = time.monotonic() + 30
        while True:
            try:
                assert isinstance(tether.run(iid, "HealthCheck"), InlineResponse)
                break
            except RateLimited as paused:
                assert "rate governor" in paused.message, paused.message
                assert time.monotonic() < deadline, "the governor's pause did not end"
                time.sleep(0.2)
