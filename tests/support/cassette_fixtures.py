"""Response fixtures kept as cassettes (one documented exchange per file, ``tests/fixtures/<definition>/<name>.yaml``)
read back in the shape the older JSON fixtures have (``{"status", "headers", "body"}``), so a test's own helpers
read either; fixtures that are not responses (webhook deliveries) stay JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.testing.cassettes import load


def response_fixture(folder: Path, name: str) -> dict[str, Any]:
    cassette = folder / f"{name}.yaml"
    if not cassette.exists():
        return json.loads((folder / f"{name}.json").read_text())
    (interaction,) = load(cassette)
    response = interaction.response
    return {"status": response.status, "headers": response.headers, "body": response.body}
