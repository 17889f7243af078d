"""The client against the sandbox provider of the embedded default (definition ``sandbox``): the typed-in API key
``sbx_key_acme``, a queued ``Sync`` run by the embedded worker, the acme seed read back through ``iter_records``,
and a mirror built from ``iter_changes`` alone equal to what the records API lists."""

from __future__ import annotations

from tether_client import AsyncClient, Client, QueuedResponse

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
