"""Fixtures of the page's browser tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.browser import KEPT_SHOTS


@pytest.fixture
def shots(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """The test's screenshot folder (printed); afterwards the set is also kept under ``.cache/screenshots/page``."""
    folder = tmp_path / "screenshots"
    folder.mkdir()
    print(f"screenshots: {folder}")
    yield folder
    kept = KEPT_SHOTS / request.node.name
    shutil.rmtree(kept, ignore_errors=True)
    shutil.copytree(folder, kept)
    print(f"screenshots kept in {kept}")
