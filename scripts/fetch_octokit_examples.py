#!/usr/bin/env python3
"""Fetch GitHub's real webhook example payloads (npm ``@octokit/webhooks-examples``) into
``.cache/octokit-webhooks-examples/``.

The package ships ``api.github.com/index.json``: one entry per event type (``name``) with its ``examples``, the
payloads GitHub documents. ``npm pack`` downloads the tarball; only that JSON is kept. Idempotent: does nothing
when the JSON is already cached. Never commit the cache (it is git-ignored).
Usage: ``python scripts/fetch_octokit_examples.py [--force]``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "@octokit/webhooks-examples@7.6.1"
CACHE = Path(__file__).resolve().parent.parent / ".cache" / "octokit-webhooks-examples"
TARGET = CACHE / "index.json"
MEMBER = "package/api.github.com/index.json"


def fetch(force: bool = False) -> Path:
    """Return the path of the cached JSON, fetching it first when missing."""
    if TARGET.exists() and not force:
        return TARGET
    if shutil.which("npm") is None:
        raise SystemExit(f"fetch_octokit_examples: `npm` is required to fetch {PACKAGE} (install Node.js)")
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            out = subprocess.run(
                ["npm", "pack", PACKAGE, "--silent", "--pack-destination", tmp],
                check=True,
                capture_output=True,
                text=True,
            )
        except subprocess.CalledProcessError as exc:
            raise SystemExit(f"fetch_octokit_examples: `npm pack {PACKAGE}` failed:\n{exc.stderr.strip()}") from None
        tarball = Path(tmp) / out.stdout.strip().splitlines()[-1]
        with tarfile.open(tarball) as archive:
            archive.extractall(tmp, filter="data")
        data = json.loads((Path(tmp) / MEMBER).read_text())
        if not isinstance(data, list) or not all("name" in e and "examples" in e for e in data):
            raise SystemExit(f"fetch_octokit_examples: {MEMBER} of {PACKAGE} has an unexpected shape")
        partial = TARGET.with_suffix(".json.partial")
        partial.write_text(json.dumps({"package": PACKAGE, "events": data}))
        partial.replace(TARGET)
    return TARGET


if __name__ == "__main__":
    print(fetch(force="--force" in sys.argv[1:]))
