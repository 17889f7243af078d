"""Run one benchmark: ``python -m bench NAME [OPTIONS]`` (``python -m bench`` lists them; options go to it)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if not m.name.startswith("_"))


def main(argv: list[str]) -> int:
    names = available()
    if not argv or argv[0] not in names:
        print(f"usage: python -m bench NAME  (available: {', '.join(names) or 'none yet'})", file=sys.stderr)
        return 2
    importlib.import_module(f"bench.{argv[0]}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
