"""``tether runs list|tail`` over a real SQLite file, and the progress display of the long commands (issue 23).

In-process through Typer's runner (a process start costs seconds on the shared machine). The runner's stderr is not
a terminal, which is the CI case: no progress is drawn. ``TTY_COMPATIBLE=1`` (rich's own switch) stands for a
terminal where a test needs the bar.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import col
from typer.testing import CliRunner

from engine import cli_runs
from engine.cli import app
from engine.runs.runstore import new_run
from engine.runtime import Runtime
from engine.store.database import Database
from engine.store.tables import Integration, Run, RunStatus, utcnow
from support.sample_runtime import start_sample_runtime

TERMINAL_ENV = {"TTY_COMPATIBLE": "1", "FORCE_COLOR": None}
PIPE_ENV = {"TTY_COMPATIBLE": None, "FORCE_COLOR": None}


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    url = f"sqlite:///{tmp_path / 'tether.db'}"
    monkeypatch.setenv("TETHER_DATABASE_URL", url)
    rt = start_sample_runtime(monkeypatch, url, str(tmp_path), migrate=True)
    yield rt
    rt.close()


def integration(runtime: Runtime, owner: str = "u1") -> str:
    row = Integration(tenant_id="t1", owner_id=owner, definition_id="sample")
    with runtime.db.session() as session:
        session.add(row)
        session.flush()
        return row.id


def add_run(runtime: Runtime, integration_id: str, status: RunStatus, *, minutes_ago: float, **fields: Any) -> str:
    queued = utcnow() - timedelta(minutes=minutes_ago)
    run = new_run(
        integration_id=integration_id,
        tenant_id="t1",
        operation="ItemSync",
        trigger="api",
        status=status,
        queued_at=queued,
        attempts=0 if status == RunStatus.queued else 1,
        **fields,
    )
    with runtime.db.session() as session:
        session.add(Run.model_validate(run.model_dump()))
    return run.id


def invoke(*args: str, env: dict[str, str | None] = PIPE_ENV) -> Any:
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_runs_list_newest_first_filtered_by_integration_and_status(runtime: Runtime) -> None:
    one, other = integration(runtime), integration(runtime, "u2")
    old = add_run(runtime, one, RunStatus.succeeded, minutes_ago=30)
    stalled = add_run(runtime, one, RunStatus.stalled, minutes_ago=20, error_code="no_progress")
    add_run(runtime, other, RunStatus.failed, minutes_ago=10)

    lines = invoke("runs", "list", "--integration", one).stdout.splitlines()
    assert lines[0].split() == ["id", "integration_id", "operation", "status", "attempts", "error_code", "queued_at",
                                "finished_at"]  # fmt: skip
    assert [line.split()[0] for line in lines[1:]] == [stalled, old]
    assert lines[1].split()[3:6] == ["stalled", "1", "no_progress"]

    only = invoke("runs", "list", "--status", "stalled", "--json").stdout
    assert [(run["id"], run["status"]) for run in json.loads(only)] == [(stalled, "stalled")]
    assert len(invoke("runs", "list", "--limit", "1").stdout.splitlines()) == 2


def test_runs_list_refuses_an_unknown_status_naming_the_statuses(runtime: Runtime) -> None:
    assert tuple(status.value for status in RunStatus) == cli_runs.STATUS_NAMES
    result = CliRunner().invoke(app, ["runs", "list", "--status", "done"])
    assert result.exit_code == 2
    assert "'done' is not a run status" in result.output and "stalled" in result.output


def test_runs_tail_prints_the_last_runs_then_new_runs_and_status_changes(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    iid = integration(runtime)
    add_run(runtime, iid, RunStatus.succeeded, minutes_ago=30)
    earlier = add_run(runtime, iid, RunStatus.failed, minutes_ago=20)
    running = add_run(runtime, iid, RunStatus.running, minutes_ago=10)
    elsewhere = integration(runtime, "u2")
    made: list[str] = []
    real_pause = cli_runs._pause

    def first_interval_then_changes(seconds: float) -> None:
        """Between tail's first read and its first poll: the running run stalls, a new run is queued (and one of
        another integration, which ``--integration`` leaves out)."""
        if not made:
            with runtime.db.session() as session:
                session.execute(
                    update(Run)
                    .where(col(Run.id) == running)
                    .values(status=RunStatus.stalled, error_code="worker_lost", finished_at=utcnow())
                )
            add_run(runtime, elsewhere, RunStatus.queued, minutes_ago=0)
            made.append(add_run(runtime, iid, RunStatus.queued, minutes_ago=0))
        real_pause(min(seconds, 0.01))

    monkeypatch.setattr(cli_runs, "_pause", first_interval_then_changes)
    args = [
        "runs",
        "tail",
        "--integration",
        iid,
        "--last",
        "2",
        "--interval",
        "0.05",
        "--count",
        "4",
        "--timeout",
        "60",
    ]
    lines = invoke(*args).stdout.splitlines()
    assert [line.split()[1] for line in lines[:2]] == [earlier, running]  # the last two, newest last
    assert lines[1].split()[4] == "running"
    changed = {line.split()[1]: line.split()[4:6] for line in lines[2:]}
    assert changed == {running: ["stalled", "worker_lost"], made[0]: ["queued", "attempt"]}


def test_runs_tail_stops_at_its_timeout_without_changes(runtime: Runtime) -> None:
    iid = integration(runtime)
    add_run(runtime, iid, RunStatus.succeeded, minutes_ago=5)
    result = invoke("runs", "tail", "--interval", "0.05", "--timeout", "0.2")
    assert len(result.stdout.splitlines()) == 1


# -- the progress display --------------------------------------------------------------------------------------


@pytest.fixture
def payload_file(tmp_path: Path) -> Path:
    path = tmp_path / "repos.json"
    path.write_text(json.dumps([{"id": i, "name": f"repo-{i}", "full_name": f"o/repo-{i}"} for i in range(40)]))
    return path


def test_dry_run_over_many_payloads_draws_progress_on_a_terminal_only(payload_file: Path) -> None:
    args = ["mapping", "dry-run", "github_app", "asset", "--variant", "repository", "--payload", str(payload_file)]
    piped = invoke(*args, env=PIPE_ENV)
    assert piped.stderr == ""  # not a terminal (CI): nothing drawn
    terminal = invoke(*args, env=TERMINAL_ENV)
    assert "mapping 40 payload(s)" in terminal.stderr and "40/40" in terminal.stderr
    assert terminal.stdout == piped.stdout  # the answer on stdout is the same, scriptable
    assert piped.stdout.splitlines()[-1].startswith("40 record(s): ")


def test_db_upgrade_counts_its_migrations_on_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    monkeypatch.setenv("TETHER_DATABASE_URL", url)
    db = Database(url)
    pending = db.pending_upgrades()
    assert pending >= 12
    result = invoke("db", "upgrade", env=TERMINAL_ENV)
    assert result.stdout.startswith("database at revision ")
    assert f"{pending}/{pending}" in result.stderr and "migrated to" in result.stderr
    assert db.pending_upgrades() == 0
    db.dispose()


def test_keys_rotate_reports_its_stages_on_a_terminal(runtime: Runtime) -> None:
    result = invoke("keys", "rotate", env=TERMINAL_ENV)
    assert result.stdout.startswith("re-wrapped ")
    assert "re-wrapped event endpoints (0)" in result.stderr and "4/4" in result.stderr
    assert invoke("keys", "rotate", env=PIPE_ENV).stderr == ""
