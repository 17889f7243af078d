"""The asynchronous client against a live server: the same calls awaited, async iteration, and the principal
signer (a ``user`` principal sees only its own integrations; a wrong key or a bad combination is refused)."""

from __future__ import annotations

import time

import pytest

from engine.api.principal import verify_principal
from support.ops_definition import OpsToken
from tether_client import (
    AsyncClient,
    Forbidden,
    InlineResponse,
    NotFound,
    PrincipalSigner,
    QueuedResponse,
    Unauthenticated,
    sign_principal,
)

from .conftest import PRINCIPAL_KEY, Live


async def test_the_async_client_runs_an_integration(live: Live) -> None:
    async with AsyncClient(live.base, api_key=live.key) as tether:
        created = await tether.create_integration("ops", owner_id="carol")
        connected = await tether.submit_credential(created.id, OpsToken.slot_id(), {"token": "ops-secret-3"})
        assert connected.status == "connected"
        assert (await tether.validate(created.id)).is_valid is True
        reconcile = [r async for r in tether.iter_runs(created.id, operation="AssetSync")]
        assert [(await tether.get_run(r.id, wait=60)).status for r in reconcile] == ["succeeded"]

        ping = await tether.run(created.id, "Ping")
        assert isinstance(ping, InlineResponse) and ping.result == {"ok": True}
        queued = await tether.run(created.id, "AssetSync", {"count": 2})
        assert isinstance(queued, QueuedResponse)
        assert (await tether.get_run(queued.run_id, wait=60)).status == "succeeded"
        newest_first = [queued.run_id, ping.run.id, reconcile[0].id]
        assert [r.id async for r in tether.iter_runs(created.id, limit=1)] == newest_first

        records = [r async for r in tether.iter_records("asset", owner_id="carol", limit=2)]
        assert sorted(r["source_identifier"] for r in records) == sorted(f"a{i}" for i in range(5))
        assert await tether.get_record("asset", records[-1]["id"]) == records[-1]
        changes = [c async for c in tether.iter_changes(integration_id=created.id, limit=2)]
        assert [c.schema_ for c in changes] == ["asset"] * 5
        assert (await tether.list_changes(after=changes[-1].seq)).next_after == changes[-1].seq

        with pytest.raises(NotFound) as missing:
            await tether.get_run("no-such-run")
        assert missing.value.code == "not_found"
        assert (await tether.disconnect(created.id)).integration.status == "disconnected"


async def test_a_signed_user_principal_sees_only_its_own_integrations(live: Live) -> None:
    async with AsyncClient(live.base, api_key=live.key) as server:
        mine = await server.create_integration("ops", owner_id="dave")
        await server.create_integration("ops", owner_id="erin")
    dave = PrincipalSigner(PRINCIPAL_KEY, "acme", "dave", "user")
    async with AsyncClient(live.base, principal=dave) as tether:
        assert [i.id for i in await tether.list_integrations()] == [mine.id]
        await tether.submit_credential(mine.id, OpsToken.slot_id(), {"token": "ops-secret-4"})
        with pytest.raises(Forbidden) as server_only:
            await tether.get_access_token(mine.id)
        assert server_only.value.code == "forbidden"
        with pytest.raises(Forbidden):  # forcing a new token is the host's server's too
            await tether.get_access_token(mine.id, refresh=True)
    as_server = PrincipalSigner(PRINCIPAL_KEY, "acme", role="server")
    async with AsyncClient(live.base, principal=as_server) as tether:
        assert len(await tether.list_integrations()) == 2
    forged = PrincipalSigner("another-key", "acme", "dave", "user")
    async with AsyncClient(live.base, principal=forged) as tether:
        with pytest.raises(Unauthenticated) as refused:
            await tether.list_integrations()
        assert refused.value.message == "the principal header's signature does not verify"


def test_sign_principal_is_what_the_engine_verifies() -> None:
    header = sign_principal(PRINCIPAL_KEY, "acme", "frank", "user", 120, session="sess-1")
    principal = verify_principal(header, PRINCIPAL_KEY)
    assert (principal.tenant_id, principal.owner_id, principal.role, principal.session_id) == (
        "acme",
        "frank",
        "user",
        "sess-1",
    )
    server = verify_principal(sign_principal(PRINCIPAL_KEY, "acme", role="server"), PRINCIPAL_KEY)
    assert (server.role, server.owner_id) == ("server", "")
    with pytest.raises(Exception, match="expired"):
        verify_principal(header, PRINCIPAL_KEY, now=time.time() + 121)
    with pytest.raises(ValueError, match="owner"):
        sign_principal(PRINCIPAL_KEY, "acme", role="user")
