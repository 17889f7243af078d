"""``tether definitions record`` against a live stand-in, and ``tether definitions test`` on cassettes."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from definitions.slack.slots import SlackOAuthToken
from engine.cli import app
from engine.custody.crypto import generate_master_key
from engine.kit.egress import LOOPBACK_ENV
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.tables import Integration, IntegrationStatus
from engine.testing.cassettes import load_cassette
from support.recordings import CASSETTES, SLACK_CONFIG, SLACK_TOKEN, slack_standin
from support.replay import replay_server


@pytest.fixture
def slack_integration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A Slack integration stored the way setup leaves one, in the database the CLI's settings name."""
    monkeypatch.setenv("TETHER_DATABASE_URL", f"sqlite:///{tmp_path / 'tether.db'}")
    monkeypatch.setenv("TETHER_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("TETHER_SECRET_MASTER_KEY", generate_master_key())
    monkeypatch.setenv("TETHER_SLACK_CLIENT_ID", SLACK_CONFIG["client_id"])
    monkeypatch.setenv("TETHER_SECRET_SLACK_CLIENT_SECRET", SLACK_CONFIG["client_secret"])
    monkeypatch.setenv("TETHER_SECRET_SLACK_SIGNING_SECRET", SLACK_CONFIG["signing_secret"])
    monkeypatch.setenv(LOOPBACK_ENV, "1")
    runtime = Runtime.start(Settings(), migrate=True)
    try:
        with runtime.db.session() as session:
            row = Integration(
                tenant_id="t",
                owner_id="o",
                definition_id="slack",
                status=IntegrationStatus.connected,
                provider_data={"connection": "SlackOAuthConnection"},
            )
            session.add(row)
        runtime.keystore.save(row.id, SlackOAuthToken(access_token=SecretStr(SLACK_TOKEN), token_type="bot"))
    finally:
        runtime.close()
    return row.id


def test_record_writes_a_scrubbed_cassette_that_passes_the_suite(slack_integration: str, tmp_path: Path) -> None:
    out = tmp_path / "cassettes" / "slack"
    with replay_server(slack_standin) as server:
        for operation in ("HealthCheck", "UserSync"):
            result = CliRunner().invoke(
                app,
                [
                    "definitions",
                    "record",
                    "slack",
                    operation,
                    "--integration",
                    slack_integration,
                    "--out",
                    str(out / f"{operation}.yaml"),
                    "--upstream",
                    f"https://slack.com={server.url}",
                ],
            )
            assert result.exit_code == 0, result.output
            assert result.output.startswith(f"wrote {out / operation}.yaml (")
    assert len(server.received) == 3  # auth.test, then users.list twice: the stand-in really answered
    cassette = load_cassette(out / "UserSync.yaml")
    assert [i.request.url for i in cassette.interactions] == ["https://slack.com/api/users.list"] * 2
    text = (out / "UserSync.yaml").read_text()
    assert SLACK_TOKEN not in text and SLACK_CONFIG["client_secret"] not in text
    assert cassette.metadata["operation"] == "UserSync" and cassette.metadata["connection"] == "SlackOAuthConnection"
    for name in ("disconnect.SlackOAuthConnection.yaml", "webhook.events.yaml"):
        (out / name).write_text((CASSETTES / "slack" / name).read_text())
    tested = CliRunner().invoke(app, ["definitions", "test", "slack", "--cassettes", str(out)])
    assert tested.exit_code == 0, tested.output
    assert "[ingest.pages_to_end] ok UserSync" in tested.output
    assert tested.output.strip().endswith("ok: slack passes the standard suite")


def test_record_refuses_another_definitions_integration(slack_integration: str) -> None:
    result = CliRunner().invoke(
        app, ["definitions", "record", "github_app", "HealthCheck", "--integration", slack_integration]
    )
    assert result.exit_code == 1 and f"no integration {slack_integration} of github_app" in result.output


def test_record_refuses_a_malformed_upstream(slack_integration: str) -> None:
    result = CliRunner().invoke(
        app,
        [
            "definitions",
            "record",
            "slack",
            "HealthCheck",
            "--integration",
            slack_integration,
            "--upstream",
            "slack.com",
        ],
    )
    assert result.exit_code == 1 and "--upstream takes ORIGIN=URL" in result.output


def test_a_failed_recording_writes_nothing(slack_integration: str, tmp_path: Path) -> None:
    out = tmp_path / "HealthCheck.yaml"
    # No stand-in at that address: the provider cannot be reached and nothing is written.
    result = CliRunner().invoke(
        app,
        [
            "definitions",
            "record",
            "slack",
            "HealthCheck",
            "--integration",
            slack_integration,
            "--out",
            str(out),
            "--upstream",
            "https://slack.com=http://127.0.0.1:9",
        ],
    )
    assert result.exit_code == 1 and "recording_failed" in result.output
    assert not out.exists()


def test_test_exits_1_naming_the_failed_checks(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["definitions", "test", "slack", "--cassettes", str(tmp_path)])
    assert result.exit_code == 1
    assert "[suite.cassettes] FAIL slack: no cassettes in" in result.output
    assert "1 check(s) failed: suite.cassettes" in result.output


def test_test_refuses_an_unknown_definition() -> None:
    result = CliRunner().invoke(app, ["definitions", "test", "nope"])
    assert result.exit_code == 1 and "no definition 'nope'" in result.output


def test_record_webhook_writes_the_received_deliveries(slack_integration: str, tmp_path: Path) -> None:
    from engine.store.tables import WebhookDelivery, WebhookEndpoint

    runtime = Runtime.start(Settings())
    try:
        with runtime.db.session() as session:
            endpoint = WebhookEndpoint(integration_id=slack_integration, webhook="events")
            session.add(endpoint)
            session.flush()
            session.add(
                WebhookDelivery(
                    endpoint_id=endpoint.id,
                    integration_id=slack_integration,
                    delivery_id="Ev1",
                    event_type="user_change",
                    body=b'{"type": "event_callback", "token": "verification-token-value"}',
                    headers={"x-slack-signature": "v0=deadbeef", "x-slack-request-timestamp": "1700000000"},
                )
            )
    finally:
        runtime.close()
    out = tmp_path / "webhook.events.yaml"
    result = CliRunner().invoke(
        app, ["definitions", "record", "slack", "webhook:events", "--integration", slack_integration, "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    (example,) = load_cassette(out).interactions
    assert example.request.body == {"type": "event_callback", "token": "<scrubbed>"}
    assert example.request.headers == {"x-slack-signature": "<scrubbed>", "x-slack-request-timestamp": "1700000000"}
    assert load_cassette(out).metadata == {"kind": "webhook", "definition": "slack", "webhook": "events"}
    missing = CliRunner().invoke(
        app, ["definitions", "record", "slack", "webhook:nope", "--integration", slack_integration, "--out", str(out)]
    )
    assert missing.exit_code == 1 and "has no webhook 'nope'" in missing.output
