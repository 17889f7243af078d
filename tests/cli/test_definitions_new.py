"""``tether definitions new``: every skeleton (three auths, and a data file) registers as it is written, is built on
the kit (no hand-written pagination, status checks or Authorization header), and a taken or invalid name is refused
with exit code 2 before anything is written."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

import engine
from engine.cli import app
from engine.custody.crypto import generate_master_key
from engine.devtools.scaffold import ScaffoldError, scaffold
from engine.queue import worker as worker_module
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database
from engine.store.tables import Integration, IntegrationStatus
from support.replay import Answer, Received, replay_server

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
    scaffold("acme_data", auth="oauth2", data=True, directory=files, registered=registered)
    env = {"TETHER_DEFINITION_MODULES": ",".join(AUTHS), "TETHER_DEFINITIONS_DIR": str(files)}
    checked = cli(tmp_path, "definitions", "check", **env)
    assert checked.returncode == 0, checked.stderr
    listed = cli(tmp_path, "definitions", "list", "--json", **env)
    assert listed.returncode == 0, listed.stderr
    views = {view["id"]: view for view in json.loads(listed.stdout)}
    for name in (*AUTHS, "acme_data"):
        assert "TaskSync" in views[name]["operations"], views[name]
        assert [(s["schema_name"], s["variant"]) for s in views[name]["schemas"]] == [("task", name)]
    assert views["acme_grant"]["connections"] == ["AcmeGrantConnection"]
    assert views["acme_data"]["connections"] == ["AcmeDataOAuth"]


@pytest.mark.parametrize("auth", sorted(set(AUTHS.values())))
def test_a_skeleton_leaves_pagination_status_checks_and_auth_headers_to_the_kit(tmp_path: Path, auth: str) -> None:
    written = scaffold("acme", auth=auth, directory=tmp_path, registered=set())
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
    if request.path == "/tasks":
        if request.query.get("cursor") == ["c2"]:
            return Answer(200, {"data": [{"id": "t2", "title": "Two"}], "next_cursor": ""})
        return Answer(200, {"data": [{"id": "t1", "title": "One"}], "next_cursor": "c2"})
    return Answer(404, {"error": "not found"})


@pytest.mark.parametrize("name", sorted(AUTHS))
async def test_every_skeleton_records_and_passes_the_standard_suite(
    name: str, tmp_path: Path, sqlite_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recorded against a provider answering its placeholder shapes, each skeleton passes every check of the
    standard suite as it was written: the wiring is the kit's, only the provider's answers are to fill in."""
    recording = pytest.importorskip("engine.testing.recording", reason="engine.testing (the standard suite) is absent")
    suite = pytest.importorskip("engine.testing.suite", reason="engine.testing (the standard suite) is absent")
    auth, env_name = AUTHS[name], name.upper()
    scaffold(name, auth=auth, directory=tmp_path, registered=set())
    monkeypatch.syspath_prepend(str(tmp_path))
    env = {
        "TETHER_DATABASE_URL": sqlite_database.url,
        "TETHER_SECRET_MASTER_KEY": generate_master_key(),
        "TETHER_STATE_DIR": str(tmp_path / "state"),
        "TETHER_BROKER_URL": "",
        "TETHER_DEFINITION_MODULES": name,
        "TETHER_ENABLED_DEFINITIONS": name,
        "TETHER_ALLOW_LOOPBACK_PROVIDERS": "1",
        f"TETHER_{env_name}_CLIENT_ID": "client-id",
        f"TETHER_SECRET_{env_name}_CLIENT_SECRET": "client-secret-value",
        f"TETHER_SECRET_{env_name}_APP_TOKEN": SKELETON_TOKEN,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    module = importlib.import_module(f"{name}.definition")
    camel = "".join(part.capitalize() for part in name.split("_"))
    credential = {
        "api-key": lambda: getattr(module, f"{camel}ApiKey")(api_key=SecretStr(SKELETON_TOKEN)),
        "oauth2": lambda: getattr(module, f"{camel}Token")(access_token=SecretStr(SKELETON_TOKEN)),
        "app-install": lambda: getattr(module, f"{camel}Installation")(installation_id="inst-1"),
    }[auth]()
    worker_module.reset()
    recorder = Runtime.start(Settings())
    cassettes = tmp_path / "cassettes"
    try:
        with recorder.db.session() as session:
            integration = Integration(
                tenant_id="t1",
                owner_id="u1",
                definition_id=name,
                status=IntegrationStatus.connected,
                provider_data={"connection": f"{camel}Connection"},
            )
            session.add(integration)
        recorder.keystore.save(integration.id, credential)
        with replay_server(skeleton_api) as server:
            upstreams = {f"https://api.{name.replace('_', '-')}.example": server.url}
            for operation in (f"{camel}HealthCheck", "TaskSync"):
                await recording.record_to(
                    recorder, integration.id, operation, cassettes / f"{operation}.yaml", upstreams=upstreams
                )
    finally:
        worker_module.reset()
        recorder.close()
        for loaded in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
            del sys.modules[loaded]
    definition = module.definition
    report = await suite.arun_suite(definition, cassettes, workdir=tmp_path / "suite")
    assert report.ok, report.text()
    assert {r.check for r in report.results if r.ok and not r.skipped} >= {
        "health.passes",
        "health.unauthorized",
        *(["auth.refreshes"] if auth == "oauth2" else []),  # the only skeleton whose token expires
        "ingest.pages_to_end",
        "ingest.maps_records",
        "ingest.repeated_cursor",
        "rate_limit.retry_after",
        "disconnect.revokes",
        "secrets.not_logged",
    }
