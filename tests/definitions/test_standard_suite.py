"""The standard suite (``engine.testing.suite``) over every built-in definition's committed cassettes, offline; the
same cassettes recorded afresh against live local servers (``support.recordings``); and definitions the suite must
fail, each with a message naming the check."""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from engine.catalog.loading import builtin_definitions
from engine.catalog.registry import Registry
from engine.errors import DefinitionError
from engine.testing.cassettes import load_cassette
from engine.testing.pytest_plugin import StandardSuite
from engine.testing.suite import CHECKS, SuiteFailed, run_suite
from support import broken_suite_definitions as broken
from support.recordings import CASSETTES, RECORDERS, SECRETS, record_all

DEFINITIONS = {d.id: d for d in builtin_definitions()}


def test_every_builtin_definition_is_recorded() -> None:
    """Each built-in definition has a recorder (``support.recordings``) and its committed cassettes."""
    recorded = {p.name for p in CASSETTES.iterdir() if p.is_dir()}
    assert recorded == set(DEFINITIONS) == set(RECORDERS)


@pytest.mark.parametrize("definition_id", sorted(DEFINITIONS))
def test_every_builtin_definition_passes_the_standard_suite(definition_id: str, standard_suite: StandardSuite) -> None:
    report = standard_suite.check(DEFINITIONS[definition_id])
    ran = {r.check for r in report.results}
    # Every check ran or was skipped with a reason: none is silently missing.
    assert ran == set(CHECKS), set(CHECKS) - ran


def test_replay_opens_no_socket(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Offline means offline: with every socket connect refused, the whole suite still passes on its cassettes."""

    def refused(self: socket.socket, address: Any) -> None:
        raise OSError(f"the replayed suite tried to connect to {address!r}")

    monkeypatch.setattr(socket.socket, "connect", refused)
    monkeypatch.setattr(socket.socket, "connect_ex", refused)
    report = run_suite(DEFINITIONS["slack"], CASSETTES / "slack", workdir=tmp_path)
    report.raise_for_failures()


def test_committed_cassettes_hold_no_secret_of_their_recordings() -> None:
    files = sorted(CASSETTES.rglob("*.yaml"))
    assert len(files) >= 9
    for path in files:
        text = path.read_text()
        for secret in SECRETS:
            assert secret not in text, f"{path.relative_to(CASSETTES)} holds a secret the recording used"
        if load_cassette(path).metadata.get("kind") != "webhook":
            assert "<scrubbed>" in text  # each call carried a credential, which the recording scrubbed


def test_recorded_against_live_local_servers_replayed_offline_and_passing(tmp_path: Path) -> None:
    """The recording itself: the sandbox on a live Tether, GitHub and Slack through stand-ins on 127.0.0.1."""
    out = tmp_path / "cassettes"
    recorded = asyncio.run(record_all(out, tmp_path / "work"))
    assert {name: sorted(p.name for p in paths) for name, paths in recorded.items()} == {
        name: sorted(p.name for p in (CASSETTES / name).glob("*.yaml")) for name in recorded
    }
    for name, paths in recorded.items():
        for path in paths:
            assert not any(secret in path.read_text() for secret in SECRETS), path
        # Pages and records as committed: a re-recording that lost a page would show here.
        for path in paths:
            fresh, committed = load_cassette(path), load_cassette(CASSETTES / name / path.name)
            assert _shape(fresh) == _shape(committed), path.name
        run_suite(DEFINITIONS[name], out / name, workdir=tmp_path / "suite" / name).raise_for_failures()


def _shape(cassette: Any) -> list[tuple[str, str]]:
    """Method and path of each interaction, IDs minted by the recording (hex, 16 characters or more) as ``{id}``."""

    def segment(part: str) -> str:
        return "{id}" if len(part) >= 16 and all(c in "0123456789abcdef" for c in part) else part

    return [(i.request.method, "/".join(map(segment, i.request.path.split("/")))) for i in cassette.interactions]


def test_github_cassette_keeps_the_providers_url_and_pages() -> None:
    cassette = load_cassette(CASSETTES / "github_app" / "RepositorySync.yaml")
    assert [i.request.url for i in cassette.interactions] == [
        "https://api.github.com/user/repos?per_page=100",
        "https://api.github.com/user/repos?per_page=100&page=2",
    ]
    assert cassette.interactions[0].request.headers["authorization"] == "Bearer <scrubbed>"
    assert cassette.metadata["credential"] == {"token": "<scrubbed>"}


# -- definitions the suite must fail ---------------------------------------------------------------------------


def _failures(definition: Any, tmp_path: Path) -> tuple[str, dict[str, str]]:
    report = run_suite(definition, CASSETTES / "slack", workdir=tmp_path)
    with pytest.raises(SuiteFailed) as failed:
        report.raise_for_failures()
    return str(failed.value), {r.check: r.message for r in report.failures()}


def test_pagination_that_stops_after_the_first_page_fails_pages_to_end(tmp_path: Path) -> None:
    message, failed = _failures(broken.first_page_only, tmp_path)
    assert set(failed) == {"ingest.pages_to_end"}
    assert "[ingest.pages_to_end] FAIL UserSync: 1 recorded interaction(s) never requested" in message
    assert "POST /api/users.list" in message


def test_pagination_without_a_loop_guard_fails_repeated_cursor(tmp_path: Path) -> None:
    message, failed = _failures(broken.endless_pages, tmp_path)
    assert set(failed) == {"ingest.repeated_cursor"}
    assert "[ingest.repeated_cursor] FAIL UserSync: the run kept paging" in message


def test_a_mapping_reading_a_field_the_provider_does_not_send_fails_maps_records(tmp_path: Path) -> None:
    message, failed = _failures(broken.wrong_field, tmp_path)
    assert set(failed) == {"ingest.maps_records"}
    assert "[ingest.maps_records] FAIL UserSync: 4 of 4 record(s) rejected; first: #0 directory_account/user" in message


def test_a_client_that_keeps_an_expired_token_fails_refreshes(tmp_path: Path) -> None:
    broken.StaleTokenClient.first = None
    message, failed = _failures(broken.stale_token, tmp_path)
    assert set(failed) == {"auth.refreshes"}
    assert "[auth.refreshes] FAIL SlackOAuthConnection: no call carried the new token" in message


def test_a_sync_that_ignores_its_cursor_fails_resumes(tmp_path: Path) -> None:
    report = run_suite(broken.forgetful_sync, CASSETTES / "sandbox", workdir=tmp_path)
    failed = {r.check: r.message for r in report.failures()}
    assert set(failed) == {"ingest.resumes"}, report.text()
    assert failed["ingest.resumes"].startswith("the second run sent only the first run's requests")


def test_a_token_written_to_a_log_fails_not_logged(tmp_path: Path) -> None:
    message, failed = _failures(broken.leaky, tmp_path)
    assert set(failed) == {"secrets.not_logged"}
    assert (
        "[secrets.not_logged] FAIL slack: a credential value appeared in a log record of definitions.leaky_slack"
        in (message)
    )


def test_a_health_check_that_crashes_fails_its_check_instead_of_the_suite(tmp_path: Path) -> None:
    message, failed = _failures(broken.crashing_health, tmp_path)
    assert "health.passes" in failed and "KeyError" in failed["health.passes"]
    assert "a field the code expected" not in message  # by type only: an exception's text may quote the provider
    assert "ingest.pages_to_end" not in failed  # the other checks still ran


def test_a_tampered_cassette_fails_cassette_scrubbed(tmp_path: Path) -> None:
    folder = tmp_path / "slack"
    folder.mkdir()
    for path in (CASSETTES / "slack").glob("*.yaml"):
        text = path.read_text()
        if path.name == "HealthCheck.yaml":
            text = text.replace("Bearer <scrubbed>", "Bearer xoxb-leaked-into-a-cassette", 1)
        (folder / path.name).write_text(text)
    report = run_suite(DEFINITIONS["slack"], folder, workdir=tmp_path / "work")
    assert [(r.check, r.subject) for r in report.failures()] == [("secrets.cassette_scrubbed", "HealthCheck.yaml")]


def test_a_declared_skip_is_reported_with_its_reason(tmp_path: Path) -> None:
    why = "Slack signs nothing we can verify here (example)"
    definition = replace(broken.leaky, standard_suite_skips={"secrets.not_logged": why})
    report = run_suite(definition, CASSETTES / "slack", workdir=tmp_path)
    assert report.ok, report.text()
    assert f"[secrets.not_logged] skip slack: {why}" in report.text()


def test_a_definition_without_cassettes_fails_naming_the_folder(tmp_path: Path) -> None:
    report = run_suite(DEFINITIONS["okta"], tmp_path / "none")
    assert [r.check for r in report.failures()] == ["suite.cassettes"]


@pytest.mark.parametrize(
    ("skips", "says"),
    [({"no.such_check": "because"}, "is not a check of the suite"), ({"health.passes": " "}, "needs a reason")],
)
def test_the_registry_refuses_unknown_or_unexplained_skips(skips: dict[str, str], says: str) -> None:
    with pytest.raises(DefinitionError) as refused:
        Registry().register(replace(DEFINITIONS["slack"], standard_suite_skips=skips))
    assert says in str(refused.value) and refused.value.rule == "suite_skip"


def test_a_graph_webhook_that_does_not_compare_client_state_fails_refuses_tampered(tmp_path: Path) -> None:
    """Graph's clientState travels in the body: the suite puts its own secret in (``sign_delivery``), so a verifier
    that accepts any clientState is caught by the batch carrying another secret."""
    from definitions.azure_entra_id.webhook import GraphChangeNotifications
    from definitions.microsoft_graph_notifications import GraphClientState

    class AnyClientState(GraphClientState):
        def verify(self, body: bytes, headers: Any, secrets: Any, *, now: float) -> None:
            json.loads(body)  # parses the batch, compares nothing

    class LaxNotifications(GraphChangeNotifications):
        verifier = AnyClientState(secret=GraphChangeNotifications.verifier.secret)

    lax = replace(DEFINITIONS["azure_entra_id"], webhooks=(LaxNotifications,))
    report = run_suite(lax, CASSETTES / "azure_entra_id", workdir=tmp_path)
    assert {(r.check, r.message) for r in report.failures()} == {
        ("webhook.refuses_tampered", "a tampered delivery was accepted")
    }
