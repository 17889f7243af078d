"""The synchronous client against a live server: an integration's whole life (create, connect, typed-in credential,
validate, operations inline and queued, runs, records, the change feed, disconnect) and the typed errors."""

from __future__ import annotations

import pytest

from support.ops_definition import OpsToken
from tether_client import (
    Client,
    Conflict,
    InlineResponse,
    InvalidInput,
    NotFound,
    QueuedResponse,
    TetherError,
    Unauthenticated,
)

from .conftest import Live


def test_an_integrations_life_through_the_client(live: Live) -> None:
    with Client(live.base, api_key=live.key) as tether:
        created = tether.create_integration("ops", owner_id="alice", name="Alice's ops")
        assert (created.definition_id, created.owner_id, created.status) == ("ops", "alice", "pending")
        assert tether.get_integration(created.id).name == "Alice's ops"
        assert [i.id for i in tether.list_integrations()] == [created.id]

        with pytest.raises(InvalidInput) as no_flow:  # a typed-in connection has no browser flow to redirect to
            tether.connect(created.id, connection="OpsKey")
        assert no_flow.value.code == "connection_required"
        connected = tether.submit_credential(created.id, OpsToken.slot_id(), {"token": "ops-secret-1"})
        assert (connected.status, connected.connection) == ("connected", "OpsKey")
        assert "ops-secret-1" not in connected.model_dump_json()
        assert tether.validate(created.id).is_valid is True
        # Connecting queued the first sync (a reconcile run, 3 assets): let it finish so the cursor is settled.
        (first,) = tether.iter_runs(created.id, operation="AssetSync")
        assert (first.trigger, tether.get_run(first.id, wait=60).status) == ("reconcile", "succeeded")

        ping = tether.run(created.id, "Ping")
        assert isinstance(ping, InlineResponse)
        assert (ping.result, ping.run.status) == ({"ok": True}, "succeeded")

        run_ids = []
        for _ in range(2):
            queued = tether.run(created.id, "AssetSync", {"count": 4})
            assert isinstance(queued, QueuedResponse)
            done = tether.get_run(queued.run_id, wait=60)
            assert (done.id, done.status, done.records_ingested) == (queued.run_id, "succeeded", 4)
            run_ids.append(queued.run_id)

        synced = list(tether.iter_runs(created.id, limit=1, operation="AssetSync"))
        assert [r.id for r in synced] == [*run_ids[::-1], first.id]
        assert len(list(tether.iter_runs(created.id, limit=2))) == 4  # and the Ping

        records = list(tether.iter_records("asset", integration_id=created.id, limit=3))
        assert sorted(r["source_identifier"] for r in records) == sorted(f"a{i}" for i in range(11))
        assert len({r["id"] for r in records}) == 11
        one = tether.get_record("asset", records[0]["id"])
        assert one == records[0]

        changes = list(tether.iter_changes(limit=3))
        assert [c.op for c in changes] == ["upsert"] * 11
        assert [c.seq for c in changes] == sorted({c.seq for c in changes})
        assert {c.record_id for c in changes} == {r["id"] for r in records}
        assert tether.list_changes(after=changes[-1].seq).changes == []
        assert list(tether.iter_changes(after=changes[3].seq)) == changes[4:]

        gone = tether.disconnect(created.id)
        assert (gone.integration.status, gone.note) == ("disconnected", "delete the token by hand")


def test_errors_are_typed_and_carry_the_stable_code(live: Live) -> None:
    with Client(live.base, api_key=live.key) as tether:
        with pytest.raises(NotFound) as missing:
            tether.get_integration("no-such-integration")
        assert (missing.value.code, missing.value.status) == ("not_found", 404)
        assert isinstance(missing.value, TetherError) and missing.value.message

        created = tether.create_integration("ops", owner_id="bob")
        with pytest.raises(Conflict) as not_connected:
            tether.run(created.id, "Ping")
        assert not_connected.value.code == "integration_not_connected"
        with pytest.raises(NotFound):
            tether.run(created.id, "NoSuchOperation")
        with pytest.raises(InvalidInput) as bad_cursor:
            tether.list_records("asset", cursor="not-a-cursor")
        assert (bad_cursor.value.code, bad_cursor.value.status) == ("invalid_cursor", 422)
        with pytest.raises(InvalidInput) as bad_credential:
            tether.submit_credential(created.id, OpsToken.slot_id(), {"token": "x", "unexpected": 1})
        assert bad_credential.value.status == 422

        tether.submit_credential(created.id, OpsToken.slot_id(), {"token": "ops-secret-2"})
        with pytest.raises(Conflict) as no_token:
            tether.get_access_token(created.id)
        assert no_token.value.code == "no_access_token"
        with pytest.raises(Conflict) as nothing_to_renew:  # a typed-in key has no OAuth token to refresh
            tether.get_access_token(created.id, refresh=True)
        assert nothing_to_renew.value.code == "no_access_token"

    with Client(live.base, api_key="tk_not-a-key") as stranger, pytest.raises(Unauthenticated) as refused:
        stranger.list_integrations()
    assert (refused.value.code, refused.value.status) == ("unauthenticated", 401)


def test_a_client_needs_exactly_one_way_to_authenticate(live: Live) -> None:
    with pytest.raises(ValueError, match="either api_key"):
        Client(live.base)
