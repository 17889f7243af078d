"""Keystore at rest: sealed rows, versions, AAD binding, and online key rotation (library and CLI)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import update
from sqlmodel import select

from engine import CredentialSlot, OAuth2Token
from engine.custody import oauth
from engine.custody.crypto import DecryptFailed, KeyRing, generate_master_key
from engine.custody.keystore import Keystore
from engine.custody.oauth import ProviderUnavailable
from engine.store.database import Database
from engine.store.tables import Credential, Integration
from support.trickle import TRICKLE_BYTES, SlowAnswer, http_head, trickle_server

TETHER = str(Path(sys.executable).with_name("tether"))


class ApiKey(CredentialSlot):
    token: SecretStr
    region: str = "eu"


def integration(db: Database, owner: str = "u1") -> str:
    with db.session() as session:
        row = Integration(tenant_id="t1", owner_id=owner, definition_id="sample")
        session.add(row)
    return row.id


def test_save_seals_and_load_opens(database: Database) -> None:
    store = Keystore(database, KeyRing.from_master_key(generate_master_key()))
    iid = integration(database)
    first = store.save(iid, ApiKey(token=SecretStr("tok-one-secret")))
    second = store.save(iid, ApiKey(token=SecretStr("tok-two-secret"), region="us"))
    assert (first.version, second.version) == (1, 2)
    loaded = store.require(iid, ApiKey)
    assert loaded.slot.token.get_secret_value() == "tok-two-secret" and loaded.slot.region == "us"
    with database.session() as session:
        [row] = session.exec(select(Credential)).all()
    assert b"tok-two-secret" not in row.ciphertext and row.key_id == store.keyring.active_key_id


def test_a_ciphertext_moved_to_another_row_does_not_open(database: Database) -> None:
    store = Keystore(database, KeyRing.from_master_key(generate_master_key()))
    victim, attacker = integration(database, "victim"), integration(database, "attacker")
    store.save(victim, ApiKey(token=SecretStr("victim-secret")))
    store.save(attacker, ApiKey(token=SecretStr("attacker-secret")))
    with database.session() as session:
        stolen = session.exec(select(Credential).where(Credential.integration_id == victim)).one().ciphertext
        session.execute(update(Credential).where(Credential.integration_id == attacker).values(ciphertext=stolen))  # type: ignore[arg-type]
    with pytest.raises(DecryptFailed) as caught:
        store.load(attacker, ApiKey)
    assert "victim-secret" not in caught.value.message


def test_rotation_rewraps_everything_and_old_rows_open_until_then(database: Database) -> None:
    old = generate_master_key()
    store = Keystore(database, KeyRing.from_master_key(old))
    ids = [integration(database, f"u{i}") for i in range(5)]
    for i, iid in enumerate(ids):
        store.save(iid, ApiKey(token=SecretStr(f"secret-{i}")))
    new = generate_master_key()
    both = Keystore(database, KeyRing.from_master_key(f"{new},{old}"))
    assert both.require(ids[0], ApiKey).slot.token.get_secret_value() == "secret-0"  # old key still opens
    assert both.rewrap_all(batch_size=2) == 5
    assert both.key_ids_in_use() == {both.keyring.active_key_id}
    only_new = Keystore(database, KeyRing.from_master_key(new))
    assert [only_new.require(i, ApiKey).slot.token.get_secret_value() for i in ids] == [f"secret-{i}" for i in range(5)]
    assert all(only_new.require(i, ApiKey).version == 1 for i in ids)  # re-wrapping is not a new credential
    with pytest.raises(DecryptFailed):
        Keystore(database, KeyRing.from_master_key(old)).load(ids[0], ApiKey)


def test_cli_rotate_and_prune_with_the_embedded_key_file(sqlite_database: Database, tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env.update({"TETHER_DATABASE_URL": sqlite_database.url, "TETHER_STATE_DIR": str(state)})
    from engine.custody.masterkey import load_keyring
    from engine.settings import Settings

    source = load_keyring(Settings(state_dir=str(state)))
    assert source.created and stat.S_IMODE((state / "master.key").stat().st_mode) == 0o600
    store = Keystore(sqlite_database, source.keyring)
    iid = integration(sqlite_database)
    store.save(iid, ApiKey(token=SecretStr("rotate-me")))

    rotate = subprocess.run([TETHER, "keys", "rotate"], env=env, capture_output=True, text=True, timeout=60)
    assert rotate.returncode == 0, rotate.stderr
    assert "re-wrapped 1 secret(s)" in rotate.stdout
    keys = (state / "master.key").read_text().strip().split(",")
    assert len(keys) == 2 and stat.S_IMODE((state / "master.key").stat().st_mode) == 0o600
    prune = subprocess.run([TETHER, "keys", "prune"], env=env, capture_output=True, text=True, timeout=60)
    assert prune.returncode == 0, prune.stderr
    assert (state / "master.key").read_text().strip() == keys[0]
    reopened = Keystore(sqlite_database, KeyRing.from_master_key(keys[0]))
    assert reopened.require(iid, ApiKey).slot.token.get_secret_value() == "rotate-me"
    for output in (rotate.stdout + rotate.stderr, prune.stdout + prune.stderr):
        assert all(key not in output for key in keys)


class Grant(OAuth2Token):
    pass


async def test_transient_refresh_failures_are_retried_a_bounded_number_of_times(database: Database) -> None:
    store = Keystore(database, KeyRing.from_master_key(generate_master_key()), refresh_attempts=3, refresh_backoff=0.01)
    iid = integration(database)
    store.save(iid, Grant(access_token=SecretStr("old-at"), refresh_token=SecretStr("rt")))
    calls: list[int] = []

    async def flaky(current):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) < 3:
            raise ProviderUnavailable("token endpoint unreachable")
        return Grant(access_token=SecretStr("new-at"), refresh_token=SecretStr("rt"))

    refreshed = await store.refresh_if_due(iid, Grant, due=lambda s: True, refresh=flaky)
    assert len(calls) == 3 and refreshed.slot.access_token.get_secret_value() == "new-at"

    calls.clear()

    async def down(current):  # type: ignore[no-untyped-def]
        calls.append(1)
        raise ProviderUnavailable("token endpoint unreachable")

    with pytest.raises(ProviderUnavailable):
        await store.refresh_if_due(iid, Grant, due=lambda s: True, refresh=down)
    assert len(calls) == 3
    assert store.require(iid, Grant).slot.access_token.get_secret_value() == "new-at"  # nothing was lost
    with database.session() as session:
        assert session.get(Integration, iid).status == "pending"  # type: ignore[union-attr]


async def test_all_refresh_attempts_together_end_within_one_token_timeout(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token endpoint trickling its answer is cut off once, not once per attempt: the retries share the bound."""
    bound = 0.5
    monkeypatch.setattr(oauth, "TOKEN_TIMEOUT", bound)
    store = Keystore(database, KeyRing.from_master_key(generate_master_key()), refresh_attempts=3, refresh_backoff=0.01)
    iid = integration(database)
    store.save(iid, Grant(access_token=SecretStr("old-at"), refresh_token=SecretStr("rt")))
    body = b'{"access_token": "' + b"x" * TRICKLE_BYTES + b'"}'
    with trickle_server({"/token": SlowAnswer(http_head("200 OK", len(body)), body)}) as server:

        async def refresh(current):  # type: ignore[no-untyped-def]
            tokens = await oauth.refresh(
                server.url("/token"), oauth.OAuthClient("c", "s"), "rt", loopback=True
            )
            return Grant(access_token=SecretStr(tokens.access_token), refresh_token=SecretStr("rt"))

        with pytest.raises(ProviderUnavailable) as caught:
            await store.refresh_if_due(iid, Grant, due=lambda s: True, refresh=refresh)
        assert server.hung_up["/token"].wait(10)
    assert caught.value.message == f"the token endpoint did not answer within {bound:g} s"
    # The first attempt spent the whole bound, so no retry was started (before: one per attempt, 3 x the bound).
    assert server.requested == ["/token"]
    assert store.require(iid, Grant).slot.access_token.get_secret_value() == "old-at"
