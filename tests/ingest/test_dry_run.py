"""`tether mapping dry-run`: per record, filtered out / the typed object / the reject reason; no database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli import app

FIXTURES = Path(__file__).parents[1] / "fixtures" / "github_app"


@pytest.fixture
def payload_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # No database URL that exists: the command must not need one.
    monkeypatch.setenv("TETHER_DATABASE_URL", f"sqlite:///{tmp_path / 'absent' / 'never.db'}")
    repos = json.loads((FIXTURES / "installation_repositories_page1.json").read_text())["body"]["repositories"]
    path = tmp_path / "repos.json"
    path.write_text(json.dumps([*repos, {"full_name": "no node id"}, 3]))
    return path


def test_dry_run_prints_each_record(payload_file: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["mapping", "dry-run", "github_app", "asset", "--variant", "repository", "--payload", str(payload_file)]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith('#0 AssetInput {"source_identifier":"R_kgDOABPHjQ","name":"acme/tether"')
    assert lines[1].startswith("#1 AssetInput ")
    assert lines[2].startswith("#2 rejected [map_error]: map: ") and "node_id" in lines[2]
    assert lines[3].startswith("#3 rejected [map_error]")
    assert lines[4] == "4 record(s): 2 mapped, 0 filtered out, 2 rejected"
    assert not (tmp_path / "absent").exists()


def test_dry_run_shows_filtered_records(payload_file: Path) -> None:
    args = ["mapping", "dry-run", "github_app", "asset", "--variant", "repository", "--payload", str(payload_file)]
    result = CliRunner().invoke(app, [*args, "--action", "deleted"])
    assert result.exit_code == 0
    assert result.output.splitlines()[0] == "#0 filtered out"


def test_dry_run_refuses_unknown_definitions_and_bad_filters(payload_file: Path) -> None:
    result = CliRunner().invoke(app, ["mapping", "dry-run", "nope", "asset", "--payload", str(payload_file)])
    assert result.exit_code == 1 and "no definition 'nope'" in result.output
    args = ["mapping", "dry-run", "github_app", "asset", "--payload", str(payload_file)]
    result = CliRunner().invoke(app, [*args, "--integration-filter", "payload.("])
    assert result.exit_code == 1 and "does not compile" in result.output


def test_an_undeclared_variant_is_rejected(payload_file: Path) -> None:
    result = CliRunner().invoke(app, ["mapping", "dry-run", "github_app", "asset", "--payload", str(payload_file)])
    assert result.exit_code == 0
    assert "rejected [undeclared_schema]" in result.output.splitlines()[0]
