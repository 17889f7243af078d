"""Keymaker: every callback error with its status, single use under concurrency, nothing secret stored."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlmodel import select

from engine.custody.crypto import KeyRing, generate_master_key
from engine.custody.keymaker import FlowRequest, Keymaker, digest
from engine.errors import TetherError
from engine.store.database import Database
from engine.store.tables import AuthFlow, Integration


@pytest.fixture
def keymaker(database: Database) -> Keymaker:
    return Keymaker(database, KeyRing.from_master_key(generate_master_key()))


@pytest.fixture
def request_for(database: Database) -> FlowRequest:
    with database.session() as session:
        integration = Integration(tenant_id="t1", owner_id="u1", definition_id="sample")
        session.add(integration)
    return FlowRequest(
        tenant_id="t1",
        owner_id="u1",
        integration_id=integration.id,
        definition_id="sample",
        connection="OAuth",
        session_id="browser-session-1",
        scopes=("read",),
        return_url="https://app.example/settings",
    )


def error_of(call) -> TetherError:  # type: ignore[no-untyped-def]
    with pytest.raises(TetherError) as caught:
        call()
    return caught.value


def test_round_trip(keymaker: Keymaker, request_for: FlowRequest) -> None:
    started = keymaker.start(request_for)
    consumed = keymaker.consume(state=started.state, session_id="browser-session-1")
    assert consumed.integration_id == request_for.integration_id
    assert consumed.code_verifier == started.code_verifier and consumed.nonce == started.nonce
    assert 43 <= len(started.code_verifier) <= 128
    assert consumed.scopes == ("read",) and consumed.return_url == "https://app.example/settings"


def test_only_digests_and_ciphertext_are_stored(
    keymaker: Keymaker, request_for: FlowRequest, database: Database
) -> None:
    started = keymaker.start(request_for)
    with database.session() as session:
        row = session.exec(select(AuthFlow)).one()
    stored = repr(row.model_dump()).encode() + row.sealed_secrets
    for secret in (started.state, started.code_verifier, started.nonce, "browser-session-1"):
        assert secret.encode() not in stored
    assert row.state_hash == digest(started.state)


@pytest.mark.parametrize(
    ("state", "code", "status"),
    [(None, "invalid_state", 400), ("", "invalid_state", 400), ("not-a-state", "invalid_state", 400)],
)
def test_missing_or_unknown_state(keymaker: Keymaker, state: str | None, code: str, status: int) -> None:
    error = error_of(lambda: keymaker.consume(state=state, session_id="browser-session-1"))
    assert (error.code, error.status) == (code, status)


def test_replayed_state_is_rejected(keymaker: Keymaker, request_for: FlowRequest) -> None:
    started = keymaker.start(request_for)
    keymaker.consume(state=started.state, session_id="browser-session-1")
    error = error_of(lambda: keymaker.consume(state=started.state, session_id="browser-session-1"))
    assert (error.code, error.status) == ("invalid_state", 400)


def test_expired_flow(database: Database, request_for: FlowRequest) -> None:
    keymaker = Keymaker(database, KeyRing.from_master_key(generate_master_key()), ttl=timedelta(seconds=-1))
    started = keymaker.start(request_for)
    error = error_of(lambda: keymaker.consume(state=started.state, session_id="browser-session-1"))
    assert (error.code, error.status) == ("missing_flow_state", 400)


def test_callback_without_a_session(keymaker: Keymaker, request_for: FlowRequest) -> None:
    started = keymaker.start(request_for)
    error = error_of(lambda: keymaker.consume(state=started.state, session_id=None))
    assert (error.code, error.status) == ("missing_flow_state", 400)


def test_callback_from_another_session(keymaker: Keymaker, request_for: FlowRequest) -> None:
    started = keymaker.start(request_for)
    error = error_of(lambda: keymaker.consume(state=started.state, session_id="attacker-session"))
    assert (error.code, error.status) == ("session_mismatch", 403)
    # The mismatch did not burn the flow: the rightful browser can still finish.
    assert keymaker.consume(state=started.state, session_id="browser-session-1").flow_id == started.flow_id


def test_provider_error_consumes_the_flow_and_echoes_nothing(keymaker: Keymaker, request_for: FlowRequest) -> None:
    started = keymaker.start(request_for)
    provider_text = "access_denied: user said <script>no</script>"
    error = error_of(lambda: keymaker.consume(state=started.state, session_id="browser-session-1", error=provider_text))
    assert (error.code, error.status) == ("oauth_failed", 400)
    assert "script" not in error.message and "access_denied" not in error.message
    again = error_of(lambda: keymaker.consume(state=started.state, session_id="browser-session-1"))
    assert again.code == "invalid_state"


def test_a_flow_is_consumed_exactly_once_under_concurrent_callbacks(
    keymaker: Keymaker, request_for: FlowRequest
) -> None:
    started = keymaker.start(request_for)
    barrier = threading.Barrier(12)
    outcomes: list[str] = []

    def callback() -> None:
        barrier.wait()
        try:
            keymaker.consume(state=started.state, session_id="browser-session-1")
            outcomes.append("consumed")
        except TetherError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=callback) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["consumed"] + ["invalid_state"] * 11


def test_purge_removes_long_expired_flows(database: Database, request_for: FlowRequest) -> None:
    old = Keymaker(database, KeyRing.from_master_key(generate_master_key()), ttl=timedelta(days=-2))
    old.start(request_for)
    fresh = Keymaker(database, old.keyring)
    fresh.start(request_for)
    assert fresh.purge_expired() == 1
    with database.session() as session:
        assert len(session.exec(select(AuthFlow)).all()) == 1


def test_a_new_flow_supersedes_the_pending_flows_of_its_integration(
    keymaker: Keymaker, request_for: FlowRequest, database: Database
) -> None:
    older = keymaker.start(request_for)
    with database.session() as session:
        other = Integration(tenant_id="t1", owner_id="u2", definition_id="sample")
        session.add(other)
    elsewhere = keymaker.start(FlowRequest(**{**request_for.__dict__, "integration_id": other.id}))
    newer = keymaker.start(request_for)
    error = error_of(lambda: keymaker.consume(state=older.state, session_id="browser-session-1"))
    assert (error.code, error.status) == ("invalid_state", 400)
    assert "newer connect" in error.message
    assert keymaker.consume(state=newer.state, session_id="browser-session-1").flow_id == newer.flow_id
    # Another integration's flow is not touched.
    assert keymaker.consume(state=elsewhere.state, session_id="browser-session-1").flow_id == elsewhere.flow_id


def test_an_older_flow_left_live_by_a_race_still_cannot_be_consumed(
    keymaker: Keymaker, request_for: FlowRequest, database: Database
) -> None:
    """Two concurrent starts can each miss the other's row; the consuming UPDATE checks for a newer flow."""
    older = keymaker.start(request_for)
    newer = keymaker.start(request_for)
    with database.session() as session:  # what the losing start's supersede would have missed
        row = session.exec(select(AuthFlow).where(AuthFlow.id == older.flow_id)).one()
        row.consumed_at = None
        session.add(row)
    error = error_of(lambda: keymaker.consume(state=older.state, session_id="browser-session-1"))
    assert error.code == "invalid_state"
    assert keymaker.consume(state=newer.state, session_id="browser-session-1").flow_id == newer.flow_id
