"""The authoring guide's walk-through, end to end: ``tether definitions new asana`` (the real command) writes a
skeleton, the filled-in example (``docs/examples/asana/``) takes its place, ``tether definitions check`` passes, a
sync through the real runtime ingests a project's tasks from a local server answering Asana's documented shapes
(``tests/fixtures/asana/``), and ``tether mapping coverage`` reads those shapes.

Asana is not in the catalog: this is a provider added the way the guide says, not one the engine was shaped for.
"""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlmodel import col, select

import engine
from engine.custody.crypto import generate_master_key
from engine.devtools.coverage import coverage
from engine.devtools.payloads import read_paths
from engine.queue import worker as worker_module
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database
from engine.store.tables import Integration, IntegrationStatus, RunStatus
from ingest.models.task import Task
from support.published import FIXTURES
from support.replay import Answer, Received, ReplayServer, replay_server
from support.suite_checks import CALLED_PROVIDER_CHECKS

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "asana"
ASANA = FIXTURES / "asana"
SRC = Path(engine.__file__).resolve().parents[1]
TOKEN = "2/1199837474721/1204999:ExampleAsanaPat0123456789"
PROJECT = "1337"


def cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The ``tether`` command of this checkout (``python -m engine.cli``), as a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=cwd,
    )


def cli_env(tmp_path: Path, definitions: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(definitions)])
    env["TETHER_DATABASE_URL"] = f"sqlite:///{tmp_path / 'cli.db'}"
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def skeleton(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What ``tether definitions new asana --dir <tmp>`` writes (once per module: it is the same every time)."""
    base = tmp_path_factory.mktemp("scaffold")
    definitions = base / "definitions"
    definitions.mkdir()
    made = cli("definitions", "new", "asana", "--dir", str(definitions), env=cli_env(base, definitions), cwd=base)
    assert made.returncode == 0, made.stderr
    assert f"wrote {definitions / 'asana' / 'definition.py'}" in made.stdout
    return definitions / "asana"


@pytest.fixture
def scaffolded(skeleton: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The skeleton with the filled-in example in its place, importable (``asana``) for the rest of the test."""
    definitions = tmp_path / "definitions"
    package = definitions / "asana"
    shutil.copytree(skeleton, package)
    written = sorted(p.name for p in package.iterdir())
    assert written == sorted(p.name for p in EXAMPLE.iterdir() if p.suffix in (".py", ".md"))
    for name in written:
        shutil.copy(EXAMPLE / name, package / name)
    monkeypatch.syspath_prepend(str(definitions))
    yield definitions
    for name in [m for m in sys.modules if m == "asana" or m.startswith("asana.")]:
        del sys.modules[name]


def test_the_example_fills_in_the_skeleton_only_where_it_says_todo(skeleton: Path, scaffolded: Path) -> None:
    """Every line the example changes is in the module docstring or right under a ``TODO(provider)`` of the
    skeleton: the guide's claim that only provider knowledge had to be written."""
    for written in sorted(skeleton.glob("*.py")):
        before = written.read_text().splitlines()
        after = (scaffolded / "asana" / written.name).read_text().splitlines()
        docstring_end = next(
            i for i, line in enumerate(before) if line.endswith('"""') and (i > 0 or line.count('"""') == 2)
        )
        todo_lines = [i for i, line in enumerate(before) if "TODO(provider)" in line]
        matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
        for tag, i1, i2, _j1, _j2 in matcher.get_opcodes():
            if tag == "equal" or i2 <= docstring_end + 1:
                continue
            near = [t for t in todo_lines if t <= max(i1, i2 - 1) and i1 - t <= 30]
            imports = all(line.startswith(("from ", "import ", "    ", ")")) for line in before[i1:i2]) and i1 < 40
            assert near or imports, f"{written.name}: lines {i1 + 1}-{i2} changed with no TODO(provider) above"
    assert "TODO" not in "".join(p.read_text() for p in (scaffolded / "asana").glob("*.py"))


def test_definitions_check_passes_and_lists_the_stream(scaffolded: Path, tmp_path: Path) -> None:
    env = cli_env(tmp_path, scaffolded, TETHER_DEFINITION_MODULES="asana")
    checked = cli("definitions", "check", env=env, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    shown = cli("definitions", "show", "asana", env=env, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert '"TaskSync"' in shown.stdout and '"AsanaHealthCheck"' in shown.stdout


# -- a sync through the runtime, against a local Asana --------------------------------------------------------


def recorded(name: str) -> Answer:
    import json

    rec = json.loads((ASANA / f"{name}.json").read_text())
    headers = {k: v for k, v in rec["headers"].items() if k.lower() != "content-type"}
    return Answer(rec["status"], rec["body"], headers)


def asana_handler(request: Received) -> Answer:
    """Asana's API under ``/api/1.0``: the token, ``GET /users/me`` and the paged ``GET /tasks``."""
    if request.headers.get("authorization") != f"Bearer {TOKEN}":
        return recorded("error_401")
    if request.path == "/api/1.0/users/me":
        return recorded("users_me")
    if request.path == "/api/1.0/tasks":
        offset = request.query.get("offset")
        return recorded("tasks_page2" if offset == ["eyJ0eXAiOJiKV1iQLCJhbGciOiJIUzI1NiJ9"] else "tasks_page1")
    return Answer(404, {"errors": [{"message": "Not found"}]})


@pytest.fixture
def asana_api() -> Iterator[ReplayServer]:
    with replay_server(asana_handler) as server:
        yield server


@pytest.fixture
def runtime(
    scaffolded: Path,
    sqlite_database: Database,
    asana_api: ReplayServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Runtime]:
    env = {
        "TETHER_DATABASE_URL": sqlite_database.url,
        "TETHER_SECRET_MASTER_KEY": generate_master_key(),
        "TETHER_STATE_DIR": str(tmp_path / "state"),
        "TETHER_BROKER_URL": "",
        "TETHER_DEFINITION_MODULES": "asana",
        "TETHER_ENABLED_DEFINITIONS": "asana",
        "TETHER_ALLOW_LOOPBACK_PROVIDERS": "1",
        "TETHER_ASANA_API_URL": f"{asana_api.url}/api/1.0",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    worker_module.reset()
    started = Runtime.start(Settings())
    monkeypatch.setattr(started.executor, "enqueue", lambda run_id, delay, time_limit: None)
    yield started
    worker_module.reset()
    started.close()


def connect(runtime: Runtime) -> str:
    from asana.definition import AsanaApiKey  # type: ignore[import-not-found]

    with runtime.db.session() as session:
        integration = Integration(
            tenant_id="t1",
            owner_id="u1",
            definition_id="asana",
            status=IntegrationStatus.connected,
            provider_data={"connection": "AsanaConnection"},
            user_input={"project_gid": PROJECT},
        )
        session.add(integration)
    runtime.keystore.save(integration.id, AsanaApiKey(api_key=SecretStr(TOKEN)))
    return integration.id


def tasks(runtime: Runtime, integration_id: str) -> list[Task]:
    with runtime.db.session() as session:
        query = select(Task).where(Task.integration_id == integration_id).order_by(col(Task.id))
        return list(session.exec(query).all())


async def test_the_health_check_answers_with_the_account(runtime: Runtime, asana_api: ReplayServer) -> None:
    integration_id = connect(runtime)
    result = await runtime.executor.run_inline(integration_id, "AsanaHealthCheck")
    assert result.run.status == RunStatus.succeeded, result.run
    assert result.result == {"ok": True, "account_id": "1199837474721"}
    assert [r.path for r in asana_api.received] == ["/api/1.0/users/me"]


async def test_a_sync_pages_through_the_project_and_lands_its_tasks(runtime: Runtime, asana_api: ReplayServer) -> None:
    integration_id = connect(runtime)
    run_id = await runtime.executor.dispatch(integration_id, "TaskSync", trigger="api")
    outcome = await runtime.executor.execute(run_id)
    assert outcome.status == RunStatus.succeeded, (outcome.error_code, outcome.error_message)
    first, second = asana_api.received
    assert first.query["project"] == [PROJECT] and first.query["limit"] == ["100"]
    assert "modified_at" in first.query["opt_fields"][0] and "modified_since" not in first.query
    assert second.query["offset"] == ["eyJ0eXAiOJiKV1iQLCJhbGciOiJIUzI1NiJ9"]
    catnip, plants, review = tasks(runtime, integration_id)
    assert (catnip.external_id, catnip.title, catnip.description, catnip.project_id) == (
        "1204000000000001",
        "Buy catnip",
        "Get the organic kind.",
        PROJECT,
    )
    assert (catnip.labels, catnip.all_day_due, catnip.completed, catnip.assignee_id) == (
        ["errands"],
        True,
        False,
        "1199837474721",
    )
    assert catnip.due_at is not None and catnip.due_at.isoformat().startswith("2024-05-03T00:00:00")
    assert catnip.url == "https://app.asana.com/0/1337/1204000000000001"
    assert (plants.description, plants.parent_id, plants.completed, plants.all_day_due) == (
        None,
        "1204000000000001",
        True,
        False,
    )
    assert plants.completed_at is not None and plants.assignee_id is None
    assert (review.labels, review.attributes) == (["work", "q2"], {"resource_subtype": "milestone", "start_on": None})

    asana_api.received.clear()  # the next run asks only for what changed since the newest modified_at
    again = await runtime.executor.execute(await runtime.executor.dispatch(integration_id, "TaskSync", trigger="api"))
    assert again.status == RunStatus.succeeded
    assert asana_api.received[0].query["modified_since"] == ["2024-05-03T16:45:00.000Z"]


async def test_a_refused_token_fails_the_sync_as_unauthorized(runtime: Runtime) -> None:
    from asana.definition import AsanaApiKey  # type: ignore[import-not-found]

    integration_id = connect(runtime)
    runtime.keystore.save(integration_id, AsanaApiKey(api_key=SecretStr("2/revoked")))
    outcome = await runtime.executor.execute(await runtime.executor.dispatch(integration_id, "TaskSync", trigger="api"))
    assert (outcome.status, outcome.error_code) == (RunStatus.failed, "unauthorized")
    assert "revoked" not in (outcome.error_message or "")


# -- mapping coverage over Asana's documented shapes --------------------------------------------------------


def test_coverage_of_the_example_over_the_fixtures_finds_every_field_it_reads(scaffolded: Path) -> None:
    from asana import definition  # type: ignore[import-not-found]

    report = coverage(definition, read_paths([ASANA]))
    [tasks_report] = report.mappings
    assert (tasks_report.records, tasks_report.mapped, tasks_report.rejected) == (3, 3, 0)
    assert tasks_report.never_present == []
    status = {f.field: f.status for f in tasks_report.fields}
    assert status["source_updated_at"] == "filled" and status["priority"] == "not_written"
    assert "projects[].resource_type" in {u.path for u in tasks_report.unused}


def test_coverage_shows_a_field_name_asana_does_not_send(scaffolded: Path) -> None:
    """``updated_at`` is what most APIs (and Todoist's REST v2) call it; Asana says ``modified_at``. The mapping
    still maps every record, so only the coverage shows the model field always null."""
    streams = scaffolded / "asana" / "streams.py"
    streams.write_text(streams.read_text().replace('optional("modified_at")', 'optional("updated_at")'))
    from asana import definition  # type: ignore[import-not-found]

    [tasks_report] = coverage(definition, read_paths([ASANA])).mappings
    assert tasks_report.mapped == 3 and tasks_report.never_present == ["updated_at"]
    [updated] = [f for f in tasks_report.fields if f.field == "source_updated_at"]
    assert (updated.status, updated.filled, [u.path for u in updated.reads]) == ("null", 0, ["updated_at"])
    assert "modified_at" in {u.path for u in tasks_report.unused}


def test_coverage_reads_a_cassette_by_the_streams_request_path(scaffolded: Path, tmp_path: Path) -> None:
    """A vcrpy cassette's interactions are matched to the stream whose request they are, and its ``records``
    path read; the account answer of the same cassette goes to no mapping."""
    import json

    import yaml
    from asana import definition  # type: ignore[import-not-found]

    def interaction(uri: str, fixture: str) -> dict[str, Any]:
        body = json.loads((ASANA / f"{fixture}.json").read_text())["body"]
        return {
            "request": {"method": "GET", "uri": uri, "body": None, "headers": {}},
            "response": {
                "status": {"code": 200, "message": "OK"},
                "headers": {"Content-Type": ["application/json"]},
                "body": {"string": json.dumps(body)},
            },
        }

    cassette = tmp_path / "TaskSync.yaml"
    cassette.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "interactions": [
                    interaction("https://app.asana.com/api/1.0/users/me", "users_me"),
                    interaction("https://app.asana.com/api/1.0/tasks?project=1337&limit=100", "tasks_page1"),
                    interaction("https://app.asana.com/api/1.0/tasks?project=1337&limit=100&offset=x", "tasks_page2"),
                ],
            }
        )
    )
    report = coverage(definition, read_paths([cassette]))
    assert report.mappings[0].records == 3 and report.mappings[0].mapped == 3


# -- the standard suite (engine.testing, issue 25's other half) ------------------------------------------------


async def test_the_example_records_and_passes_the_standard_suite(
    scaffolded: Path,
    sqlite_database: Database,
    asana_api: ReplayServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Cassettes recorded through the egress guard against the local Asana (``--upstream`` style: the provider's
    origin sent to the stand-in, the cassette keeping Asana's URLs), then the standard suite over them, offline."""
    recording = pytest.importorskip("engine.testing.recording", reason="engine.testing (the standard suite) is absent")
    suite = pytest.importorskip("engine.testing.suite", reason="engine.testing (the standard suite) is absent")
    for key, value in {
        "TETHER_DATABASE_URL": sqlite_database.url,
        "TETHER_SECRET_MASTER_KEY": generate_master_key(),
        "TETHER_STATE_DIR": str(tmp_path / "state"),
        "TETHER_BROKER_URL": "",
        "TETHER_DEFINITION_MODULES": "asana",
        "TETHER_ENABLED_DEFINITIONS": "asana",
        "TETHER_ALLOW_LOOPBACK_PROVIDERS": "1",
    }.items():
        monkeypatch.setenv(key, value)
    worker_module.reset()
    recorder = Runtime.start(Settings())
    cassettes = tmp_path / "cassettes"
    try:
        integration_id = connect(recorder)
        for operation in ("AsanaHealthCheck", "TaskSync"):
            await recording.record_to(
                recorder,
                integration_id,
                operation,
                cassettes / f"{operation}.yaml",
                upstreams={"https://app.asana.com": asana_api.url},
            )
    finally:
        worker_module.reset()
        recorder.close()
    assert TOKEN not in "".join(p.read_text() for p in cassettes.iterdir())
    from asana import definition  # type: ignore[import-not-found]

    report = await suite.arun_suite(definition, cassettes, workdir=tmp_path / "suite")
    assert report.ok, report.text()
    assert {r.check for r in report.results if r.ok and not r.skipped} >= CALLED_PROVIDER_CHECKS
    # and mapping coverage reads the cassettes the recorder wrote, by the stream's request path
    [tasks_report] = coverage(definition, read_paths([cassettes])).mappings
    assert (tasks_report.records, tasks_report.mapped, tasks_report.never_present) == (3, 3, [])
