"""``tether definitions new``: every skeleton (three auths, and a data file) registers as it is written, is built on
the kit (no hand-written pagination, status checks or Authorization header), and a taken or invalid name is refused
with exit code 2 before anything is written."""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlmodel import select
from typer.testing import CliRunner

import engine
from engine.cli import app
from engine.custody.crypto import generate_master_key
from engine.devtools.scaffold import ScaffoldError, scaffold
from engine.queue import worker as worker_module
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database
from engine.store.tables import DeliveryStatus, Integration, IntegrationStatus, WebhookDelivery, WebhookEndpoint
from engine.webhooks.endpoints import ensure_endpoints
from engine.webhooks.targets import endpoint_secret
from ingest.models.task import Task
from support.embedded import EmbeddedWorker
from support.replay import Answer, Received, replay_server
from support.suite_checks import CALLED_PROVIDER_CHECKS
from support.webhook_kit import make_app, make_runtime, sign

SRC = Path(engine.__file__).resolve().parents[1]
AUTHS = {"acme_keys": "api-key", "acme_grant": "oauth2", "acme_install": "app-install"}


def cli(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(tmp_path / "definitions")])
    env["TETHER_DATABASE_URL"] = f"sqlite:///{tmp_path / 'cli.db'}"
    env.update(extra)
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=tmp_path,
    )


def test_every_skeleton_registers_out_of_the_box(tmp_path: Path) -> None:
    definitions, files = tmp_path / "definitions", tmp_path / "files"
    definitions.mkdir()
    files.mkdir()
    registered = set()
    for name, auth in AUTHS.items():  # the scaffold itself, in process: the registry's IDs are given
        scaffold(name, auth=auth, directory=definitions, registered=registered)
    hooked = {"acme_signed": "hmac", "acme_standard": "standard-webhooks"}
    for name, webhook in hooked.items():
        scaffold(name, auth="oauth2", webhook=webhook, directory=definitions, registered=registered)
    scaffold("acme_data", auth="oauth2", data=True, directory=files, registered=registered)
    env = {"TETHER_DEFINITION_MODULES": ",".join([*AUTHS, *hooked]), "TETHER_DEFINITIONS_DIR": str(files)}
    checked = cli(tmp_path, "definitions", "check", **env)
    assert checked.returncode == 0, checked.stderr
    listed = cli(tmp_path, "definitions", "list", "--json", **env)
    assert listed.returncode == 0, listed.stderr
    views = {view["id"]: view for view in json.loads(listed.stdout)}
    for name in (*AUTHS, "acme_data"):
        assert "TaskSync" in views[name]["operations"], views[name]
        assert [(s["schema_name"], s["variant"]) for s in views[name]["schemas"]] == [("task", name)]
    assert views["acme_grant"]["connections"] == ["AcmeGrantConnection"]
    for name in hooked:  # the webhook's event lands in the stream's (schema, variant): its mapping covers both
        assert views[name]["webhooks"] == ["events"]
        assert [(s["schema_name"], s["variant"]) for s in views[name]["schemas"]] == [("task", name)]
    assert all(views[name]["webhooks"] == [] for name in AUTHS)
    assert views["acme_data"]["connections"] == ["AcmeDataOAuth"]


@pytest.mark.parametrize("webhook", [None, "hmac", "standard-webhooks"])
@pytest.mark.parametrize("auth", sorted(set(AUTHS.values())))
def test_a_skeleton_leaves_pagination_status_checks_and_auth_headers_to_the_kit(
    tmp_path: Path, auth: str, webhook: str | None
) -> None:
    written = scaffold("acme", auth=auth, webhook=webhook, directory=tmp_path, registered=set())
    assert (tmp_path / "acme" / "webhooks.py" in written.files) == (webhook is not None)
    code = "\n".join(p.read_text() for p in written.files if p.suffix == ".py")
    for hand_written in ("while ", "status_code", '"Authorization"', "next_cursor =", "for page in", "Bearer {"):
        assert hand_written not in code, hand_written
    assert "BearerAuth(" in code and "raise_for_status(" in code and "stream_operation(" in code
    assert code.count("TODO(provider)") >= 6


def test_the_command_writes_into_the_folder_given_and_names_the_next_steps(tmp_path: Path) -> None:
    (tmp_path / "definitions").mkdir()
    made = cli(
        tmp_path,
        "definitions",
        "new",
        "acme_crm",
        "--auth",
        "oauth2",
        "--schema",
        "contact",
        "--dir",
        str(tmp_path / "definitions"),
    )
    assert made.returncode == 0, made.stderr
    streams = (tmp_path / "definitions" / "acme_crm" / "streams.py").read_text()
    assert 'schema_name="contact"' in streams and '"full_name": optional("full_name")' in streams
    assert "TETHER_DEFINITION_MODULES=acme_crm tether definitions check" in made.stdout


runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["github_app"], "already registered"),
        (["Bad-Name"], "is not a definition ID"),
        (["two__underscores"], "is not a definition ID"),
        (["class"], "Python keyword"),
        (["acme", "--auth", "saml"], "--auth must be one of"),
        (["acme", "--data", "--auth", "api-key"], "OAuth 2.0 only"),
        (["acme", "--schema", "tickets"], "is no internal model"),
        (["acme", "--data"], "TETHER_DEFINITIONS_DIR"),
    ],
)
def test_a_refused_name_or_option_exits_2_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.delenv("TETHER_DEFINITIONS_DIR", raising=False)
    directory = [] if "--data" in args and "--auth" not in args else ["--dir", str(tmp_path)]
    result = runner.invoke(app, ["definitions", "new", *args, *directory])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_or_file_is_refused(tmp_path: Path) -> None:
    scaffold("acme", directory=tmp_path, registered=set())
    with pytest.raises(ScaffoldError, match="already exists"):
        scaffold("acme", directory=tmp_path, registered=set())
    (tmp_path / "other.toml").write_text("")
    with pytest.raises(ScaffoldError, match="already exists"):
        scaffold("other", auth="oauth2", data=True, directory=tmp_path, registered=set())


# -- the standard suite, out of the box ------------------------------------------------------------------------

SKELETON_TOKEN = "skeleton-token-0123456789"


def skeleton_api(request: Received) -> Answer:
    """A provider answering exactly the skeleton's placeholder shapes: ``/me`` (or the installation), and two pages
    of ``/tasks`` linked by ``next_cursor``."""
    if request.headers.get("authorization") != f"Bearer {SKELETON_TOKEN}":
        return Answer(401, {"error": "unauthorized"})
    if request.path in ("/me", "/app/installations/inst-1", "/installation"):
        return Answer(200, {"id": "acct-1", "name": "Acme", "email": "owner@acme.example"})
    if request.path == "/webhooks" and request.method == "POST":  # the webhook's register(): a subscription
        return Answer(201, {"id": "sub-1"})
    if request.path == "/webhooks/sub-1" and request.method == "DELETE":
        return Answer(204)
    if request.path == "/tasks":
        if request.query.get("cursor") == ["c2"]:
            return Answer(200, {"data": [{"id": "t2", "title": "Two"}], "next_cursor": ""})
        return Answer(200, {"data": [{"id": "t1", "title": "One"}], "next_cursor": "c2"})
    return Answer(404, {"error": "not found"})


def skeleton_env(name: str, database_url: str, state: Path) -> dict[str, str]:
    env_name = name.upper()
    return {
        "TETHER_DATABASE_URL": database_url,
        "TETHER_SECRET_MASTER_KEY": generate_master_key(),
        "TETHER_STATE_DIR": str(state),
        "TETHER_BROKER_URL": "",
        "TETHER_DEFINITION_MODULES": name,
        "TETHER_ENABLED_DEFINITIONS": name,
        "TETHER_ALLOW_LOOPBACK_PROVIDERS": "1",
        f"TETHER_{env_name}_CLIENT_ID": "client-id",
        f"TETHER_SECRET_{env_name}_CLIENT_SECRET": "client-secret-value",
        f"TETHER_SECRET_{env_name}_APP_TOKEN": SKELETON_TOKEN,
    }


def camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def skeleton_credential(module: Any, name: str, auth: str) -> Any:
    return {
        "api-key": lambda: getattr(module, f"{camel(name)}ApiKey")(api_key=SecretStr(SKELETON_TOKEN)),
        "oauth2": lambda: getattr(module, f"{camel(name)}Token")(access_token=SecretStr(SKELETON_TOKEN)),
        "app-install": lambda: getattr(module, f"{camel(name)}Installation")(installation_id="inst-1"),
    }[auth]()


def forget_package(name: str) -> None:
    for loaded in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
        del sys.modules[loaded]


async def record_skeleton(
    name: str, auth: str, packages: Path, database: Database, monkeypatch: pytest.MonkeyPatch, cassettes: Path
) -> Any:
    """Record the skeleton (in ``packages``)'s health check and its stream against ``skeleton_api``; returns its
    definition."""
    recording = pytest.importorskip("engine.testing.recording", reason="engine.testing (the standard suite) is absent")
    monkeypatch.syspath_prepend(str(packages))
    for key, value in skeleton_env(name, database.url, packages / "state").items():
        monkeypatch.setenv(key, value)
    module = importlib.import_module(f"{name}.definition")
    credential = skeleton_credential(module, name, auth)
    worker_module.reset()
    recorder = Runtime.start(Settings())
    try:
        with recorder.db.session() as session:
            integration = Integration(
                tenant_id="t1",
                owner_id="u1",
                definition_id=name,
                status=IntegrationStatus.connected,
                provider_data={"connection": f"{camel(name)}Connection"},
            )
            session.add(integration)
        recorder.keystore.save(integration.id, credential)
        with replay_server(skeleton_api) as server:
            upstreams = {f"https://api.{name.replace('_', '-')}.example": server.url}
            for operation in (f"{camel(name)}HealthCheck", "TaskSync"):
                await recording.record_to(
                    recorder, integration.id, operation, cassettes / f"{operation}.yaml", upstreams=upstreams
                )
    finally:
        worker_module.reset()
        recorder.close()
        forget_package(name)
    return module.definition


#: What every skeleton passes (``ok``, not skipped), as written, on its recorded cassettes.
SKELETON_CHECKS = CALLED_PROVIDER_CHECKS


@pytest.mark.parametrize("name", sorted(AUTHS))
async def test_every_skeleton_records_and_passes_the_standard_suite(
    name: str, tmp_path: Path, sqlite_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recorded against a provider answering its placeholder shapes, each skeleton passes every check of the
    standard suite as it was written: the wiring is the kit's, only the provider's answers are to fill in."""
    suite = pytest.importorskip("engine.testing.suite", reason="engine.testing (the standard suite) is absent")
    auth = AUTHS[name]
    scaffold(name, auth=auth, directory=tmp_path, registered=set())
    cassettes = tmp_path / "cassettes"
    definition = await record_skeleton(name, auth, tmp_path, sqlite_database, monkeypatch, cassettes)
    report = await suite.arun_suite(definition, cassettes, workdir=tmp_path / "suite")
    assert report.ok, report.text()
    assert {r.check for r in report.results if r.ok and not r.skipped} >= {
        *SKELETON_CHECKS,
        *(["auth.refreshes"] if auth == "oauth2" else []),  # the only skeleton whose token expires
    }


# -- --webhook: a skeleton's webhook, its documented example, the suite and a delivery ----------------------------

WEBHOOK_KINDS = {"hmac": "acme_hmac", "standard-webhooks": "acme_std"}


def documented_example(kind: str) -> dict[str, Any]:
    """A change event in the shape the skeleton's placeholders read (``type``, the record under ``data``); for
    Standard Webhooks, the specification's own example payload shape (``type``, ``timestamp``, ``data``)."""
    record = {"id": "t9", "title": "Nine", "description": "from a webhook"}
    if kind == "standard-webhooks":
        return {"type": "task.updated", "timestamp": "2022-11-03T20:26:10.344522Z", "data": record}
    return {"type": "task.updated", "id": "evt_1", "data": record}


@pytest.mark.parametrize("kind", sorted(WEBHOOK_KINDS))
async def test_a_webhook_skeleton_with_its_documented_example_passes_the_webhook_checks(
    kind: str, tmp_path: Path, sqlite_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``definitions new --webhook``, its example cassette written by ``record webhook:events --example`` from a
    documented example file, no integration: the suite's webhook checks run on it and pass, with every other."""
    suite = pytest.importorskip("engine.testing.suite", reason="engine.testing (the standard suite) is absent")
    name, packages = WEBHOOK_KINDS[kind], tmp_path / "definitions"
    packages.mkdir()
    made = cli(tmp_path, "definitions", "new", name, "--webhook", kind, "--dir", str(packages))
    assert made.returncode == 0, made.stderr
    assert f"tether definitions record {name} webhook:events --example example.json" in made.stdout
    webhooks = (packages / name / "webhooks.py").read_text()
    assert ("HmacSha256(" if kind == "hmac" else "StandardWebhooks(") in webhooks
    assert "EndpointSecret()" in webhooks and webhooks.count("TODO(provider)") >= 4
    example = tmp_path / "example.json"
    example.write_text(json.dumps(documented_example(kind), indent=2))
    signature = "X-AcmeHmac-Signature" if kind == "hmac" else "webhook-signature"
    recorded = cli(
        tmp_path,
        "definitions",
        "record",
        name,
        "webhook:events",
        "--example",
        str(example),
        "--header",
        "X-Request-Id: req-1",
        "--header",
        f"{signature}: v1,documented-signature-value",  # a documented example's signature: never kept
        TETHER_DEFINITION_MODULES=name,
    )
    assert recorded.returncode == 0, recorded.stderr
    assert "task.updated -> TaskChanged" in recorded.stdout
    cassettes = tmp_path / "tests" / "cassettes" / name
    written = cassettes / "webhook.events.yaml"
    assert f"wrote {Path('tests') / 'cassettes' / name / 'webhook.events.yaml'} (1 example delivery" in recorded.stdout
    text = written.read_text()
    assert "documented-signature-value" not in text and "req-1" in text
    from engine.testing.cassettes import load

    [delivery] = load(written)
    assert json.loads(delivery.request.content) == documented_example(kind)
    assert delivery.request.headers["content-type"] == "application/json"

    definition = await record_skeleton(name, "api-key", packages, sqlite_database, monkeypatch, cassettes)
    assert [w.name for w in definition.webhooks] == ["events"]
    report = await suite.arun_suite(definition, cassettes, workdir=tmp_path / "suite")
    assert report.ok, report.text()
    passed = {r.check for r in report.results if r.ok and not r.skipped}
    assert passed >= {*SKELETON_CHECKS, "webhook.verifies", "webhook.refuses_tampered"}, report.text()


def test_record_example_refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--example`` is for webhooks only and needs no integration; without it, an integration is required."""
    scaffold("acme_hook", webhook="hmac", directory=tmp_path, registered=set())
    example = tmp_path / "example.json"
    example.write_text(json.dumps(documented_example("hmac")))
    (tmp_path / "empty.json").write_text("\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TETHER_DEFINITION_MODULES", "acme_hook")
    monkeypatch.setenv("TETHER_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    cases = [
        (["TaskSync", "--example", str(example)], "the operation is webhook:NAME"),
        (["webhook:pushes", "--example", str(example)], "has no webhook 'pushes' (its webhooks: events)"),
        (["webhook:events", "--example", str(tmp_path / "missing.json")], "cannot read --example"),
        (["webhook:events", "--example", str(tmp_path / "empty.json")], "is empty"),
        (["webhook:events", "--example", str(example), "--header", "no colon"], "--header takes 'Name: value'"),
        (["webhook:events", "--example", str(example), "--integration", "int_1"], "no --integration"),
        (["webhook:events", "--header", "X-Event: a"], "--header goes with --example"),
        (["webhook:events"], "--integration ID is required"),
    ]
    try:
        for args, message in cases:
            result = runner.invoke(app, ["definitions", "record", "acme_hook", *args])
            assert result.exit_code == 1 and message in result.output, (args, result.output)
    finally:
        forget_package("acme_hook")
    assert not (tmp_path / "tests").exists()


def test_an_example_no_event_matches_is_written_with_a_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An example of an event type the skeleton has no class for yet is still an example (the suite signs it), and
    the command says it would be kept unrouted; several files are several deliveries, in the order given."""
    scaffold("acme_note", webhook="standard-webhooks", directory=tmp_path, registered=set())
    updated, deleted = tmp_path / "updated.json", tmp_path / "deleted.json"
    updated.write_text(json.dumps(documented_example("standard-webhooks")))
    deleted.write_text(json.dumps({**documented_example("standard-webhooks"), "type": "task.deleted"}))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("TETHER_DEFINITION_MODULES", "acme_note")
    out = tmp_path / "examples.yaml"
    try:
        result = runner.invoke(
            app,
            [
                "definitions",
                "record",
                "acme_note",
                "webhook:events",
                "--example",
                str(updated),
                "--example",
                str(deleted),
                "--out",
                str(out),
            ],
        )
    finally:
        forget_package("acme_note")
    assert result.exit_code == 0, result.output
    assert f"{updated}: task.updated -> TaskChanged" in result.output
    assert f"note: {deleted}: event type 'task.deleted' matches no event of events" in result.output
    from engine.testing.cassettes import load

    assert [json.loads(i.request.content)["type"] for i in load(out)] == ["task.updated", "task.deleted"]


def test_a_webhook_with_a_data_file_is_refused(tmp_path: Path) -> None:
    """The data format declares a connection and streams, no webhooks (docs/data-definitions.md)."""
    result = runner.invoke(app, ["definitions", "new", "acme", "--data", "--webhook", "hmac", "--dir", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "a data file declares no webhooks" in result.output and "drop --data" in result.output
    unknown = runner.invoke(app, ["definitions", "new", "acme", "--webhook", "svix", "--dir", str(tmp_path)])
    assert unknown.exit_code == 2 and "--webhook must be one of hmac, standard-webhooks" in unknown.output
    assert list(tmp_path.iterdir()) == []


def provider_signature(kind: str, body: bytes, secret: str, delivery: str) -> dict[str, str]:
    """The provider's side: HMAC-SHA256 of the body in the skeleton's placeholder header, or the Standard Webhooks
    reference library (``support.webhook_kit.sign``)."""
    if kind == "standard-webhooks":
        return sign("standard", body, secret, delivery=delivery)
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"content-type": "application/json", "X-AcmeHmac-Signature": digest, "X-AcmeHmac-Delivery": delivery}


@pytest.mark.parametrize("kind", sorted(WEBHOOK_KINDS))
async def test_a_webhook_skeleton_subscribes_and_maps_a_signed_delivery_to_a_record(
    kind: str, tmp_path: Path, sqlite_database: Database, monkeypatch: pytest.MonkeyPatch, embedded: EmbeddedWorker
) -> None:
    """The skeleton as written, end to end on the engine's webhook path: connecting registers the endpoint's URL and
    secret at the provider, the provider's signed delivery of the documented example is accepted, processed by the
    worker and its record lands in ``task`` through the stream's mapping; a tampered one is refused."""
    name = WEBHOOK_KINDS[kind]
    scaffold(name, webhook=kind, directory=tmp_path, registered=set())
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        module = importlib.import_module(f"{name}.definition")
    finally:
        forget_package(name)
    with replay_server(skeleton_api) as server:
        monkeypatch.setenv("TETHER_ALLOW_LOOPBACK_PROVIDERS", "1")
        monkeypatch.setenv(f"TETHER_{name.upper()}_API_URL", server.url)
        runtime = make_runtime(sqlite_database, monkeypatch, module.definition)
        integration = Integration(
            tenant_id="t1",
            owner_id="o1",
            definition_id=name,
            status=IntegrationStatus.connected,
            provider_data={"connection": f"{camel(name)}Connection"},
        )
        with runtime.db.session() as session:
            session.add(integration)
        runtime.keystore.save(integration.id, skeleton_credential(module, name, "api-key"))
        [endpoint] = await ensure_endpoints(runtime, integration)
        [subscribed] = [r for r in server.received if r.path == "/webhooks"]
    subscription = json.loads(subscribed.body)
    assert subscription["url"] == endpoint.url and endpoint.registered and endpoint.provider_ref == "sub-1"
    secret = subscription["secret"]
    with runtime.db.session() as session:
        assert secret == endpoint_secret(runtime, session.get_one(WebhookEndpoint, endpoint.id))
    body = json.dumps(documented_example(kind)).encode()
    app_ = make_app(runtime)
    worker = embedded.start(app_)
    path = endpoint.url.removeprefix(runtime.settings.public_url)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app_), base_url="http://tether.test") as client:
        tampered = await client.post(
            path, content=body.replace(b"Nine", b"Nein"), headers=provider_signature(kind, body, secret, "d-0")
        )
        assert tampered.status_code == 401, tampered.text
        accepted = await client.post(path, content=body, headers=provider_signature(kind, body, secret, "d-1"))
        assert accepted.status_code == 202, accepted.text
        await worker.drain()
    with runtime.db.session() as session:
        [delivery] = session.exec(select(WebhookDelivery)).all()
        assert (delivery.status, delivery.event_type) == (DeliveryStatus.processed, "task.updated"), delivery
        [task] = session.exec(select(Task).where(Task.integration_id == integration.id)).all()
    assert (task.external_id, task.title, task.description) == ("t9", "Nine", "from a webhook")
