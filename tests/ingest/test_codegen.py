"""scripts/codegen.py: generated/ is current, --check notices a changed annotation, starting points are kept."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def codegen(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(root / "scripts" / "codegen.py"), *args],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=120,
    )


def project_copy(tmp_path: Path) -> Path:
    """The files codegen reads and writes, copied (the copy's script checks the copy's models)."""
    root = tmp_path / "project"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "codegen.py", root / "scripts" / "codegen.py")
    shutil.copytree(ROOT / "src" / "ingest", root / "src" / "ingest", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "generated", root / "generated", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "docs" / "schemas", root / "docs" / "schemas")  # the definition files' JSON Schema
    return root


def test_generated_is_current() -> None:
    result = codegen(ROOT, "--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_generated_file_says_do_not_edit() -> None:
    files = [p for p in (ROOT / "generated").iterdir() if p.is_file()]
    assert {p.name for p in files} >= {"__init__.py", "metadata.py", "ingest_types.py", "routing.py"}
    assert all(p.read_text().startswith("# DO NOT EDIT") for p in files)


def test_check_fails_when_an_annotation_changes(tmp_path: Path) -> None:
    root = project_copy(tmp_path)
    assert codegen(root, "--check").returncode == 0
    model = root / "src" / "ingest" / "models" / "contact.py"
    model.write_text(model.read_text().replace("phone: str | None = mapped(None)", "phone: str = mapped()"))
    result = codegen(root, "--check")
    assert result.returncode == 1
    assert result.stdout.strip() == "codegen: generated/metadata.py is stale; run scripts/codegen.py"
    assert codegen(root).returncode == 0
    assert codegen(root, "--check").returncode == 0
    assert "phone: str\n" in (root / "generated" / "ingest_types.py").read_text()
    assert '"external_id", "phone"' in (root / "generated" / "metadata.py").read_text()


def test_check_fails_on_a_hand_edit(tmp_path: Path) -> None:
    root = project_copy(tmp_path)
    routing = root / "generated" / "routing.py"
    routing.write_text(routing.read_text() + "# tweak\n")
    result = codegen(root, "--check")
    assert result.returncode == 1 and "generated/routing.py is stale" in result.stdout


def test_persistence_starting_points_are_created_once(tmp_path: Path) -> None:
    root = project_copy(tmp_path)
    stub = root / "src" / "ingest" / "persistence" / "contact.py"
    stub.write_text(stub.read_text() + "# customised\n")
    (root / "src" / "ingest" / "persistence" / "finding.py").unlink()
    assert codegen(root, "--check").returncode == 1
    result = codegen(root)
    assert result.returncode == 0 and "created src/ingest/persistence/finding.py" in result.stdout
    assert stub.read_text().endswith("# customised\n")
    assert "stock_upsert(batch)" in (root / "src" / "ingest" / "persistence" / "finding.py").read_text()
