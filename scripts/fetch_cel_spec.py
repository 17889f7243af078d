#!/usr/bin/env python3
"""Fetch the official CEL conformance tests (cel-spec ``tests/simple/testdata``) into ``.cache/cel-spec/``.

The data comes from the npm package ``@bufbuild/cel-spec`` (cel-spec v0.25.1 as JavaScript objects), fetched with
``npm pack`` and dumped to ``conformance.json`` with ``node``. Idempotent: does nothing when the JSON is already
cached. Never commit the cache (it is git-ignored). Usage: ``python scripts/fetch_cel_spec.py [--force]``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "@bufbuild/cel-spec@0.6.1"
CACHE = Path(__file__).resolve().parent.parent / ".cache" / "cel-spec"
TARGET = CACHE / "conformance.json"

_DUMP = (
    "const m = require(process.argv[1]);"
    "require('fs').writeFileSync(process.argv[2], JSON.stringify({package: process.argv[3], tests: m.tests}));"
)


def fetch(force: bool = False) -> Path:
    """Return the path of the cached JSON, fetching it first when missing."""
    if TARGET.exists() and not force:
        return TARGET
    for tool in ("npm", "node"):
        if shutil.which(tool) is None:
            raise SystemExit(f"fetch_cel_spec: `{tool}` is required to fetch {PACKAGE}")
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            ["npm", "pack", PACKAGE, "--silent", "--pack-destination", tmp],
            check=True,
            capture_output=True,
            text=True,
        )
        tarball = Path(tmp) / out.stdout.strip().splitlines()[-1]
        with tarfile.open(tarball) as archive:
            archive.extractall(tmp, filter="data")
        module = Path(tmp) / "package" / "dist" / "cjs" / "testdata" / "conformance.js"
        partial = TARGET.with_suffix(".json.partial")
        subprocess.run(["node", "-e", _DUMP, str(module), str(partial), PACKAGE], check=True)
        json.loads(partial.read_text())  # refuse to cache a broken dump
        partial.replace(TARGET)
    return TARGET


if __name__ == "__main__":
    print(fetch(force="--force" in sys.argv[1:]))
