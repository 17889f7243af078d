"""scripts/client_codegen.py: the client's models are current, and ``--check`` notices models that no longer match
the server's OpenAPI document (run on a copy of the project whose ``_models.py`` lost a field)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def check(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)])}
    script = root / "scripts" / "client_codegen.py"
    return subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True, env=env, cwd=root)


def test_the_models_are_current() -> None:
    result = check(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_notices_models_that_drifted(tmp_path: Path) -> None:
    root = tmp_path / "project"
    (root / "src").mkdir(parents=True)
    for entry in (ROOT / "src").iterdir():
        if entry.name != "tether_client" and not entry.name.startswith("."):
            (root / "src" / entry.name).symlink_to(entry)
    shutil.copytree(ROOT / "src" / "tether_client", root / "src" / "tether_client")
    shutil.copytree(ROOT / "scripts", root / "scripts")
    (root / "generated").symlink_to(ROOT / "generated")
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    models = root / "src" / "tether_client" / "_models.py"
    text = models.read_text()
    drifted = text.replace('    redirect_url: Annotated[str, Field(title="Redirect Url")]\n', "")
    assert drifted != text
    models.write_text(drifted)
    result = check(root)
    assert result.returncode == 1
    stale = "client_codegen: src/tether_client/_models.py is stale; run scripts/client_codegen.py"
    assert result.stdout.strip() == stale
