"""``tether definitions new``: every skeleton (three auths, and a data file) registers as it is written, is built on
the kit (no hand-written pagination, status checks or Authorization header), and a taken or invalid name is refused
with exit code 2 before anything is written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import engine
from engine.cli import app
from engine.devtools.scaffold import ScaffoldError, scaffold

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
