"""Shared by the site's build hooks: import the engine from this checkout (not whichever copy the venv installed)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def use_checkout() -> None:
    """Put this checkout's ``src`` (and the root, for ``generated``) first on ``sys.path``."""
    for path in (str(ROOT), str(ROOT / "src")):
        if path not in sys.path:
            sys.path.insert(0, path)
