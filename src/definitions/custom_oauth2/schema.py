"""The JSON Schema of a definition file, generated from the models that validate it (``spec``).

Written to ``docs/schemas/definition.schema.json`` by ``scripts/codegen.py`` (checked fresh by ``--check``),
published with the docs site and served by the engine at ``GET /v1/schemas/definition.json``. A file names it for
editors with ``#:schema <url>`` (Taplo, VS Code's Even Better TOML) or a ``"$schema"`` key (JSON).

One file is one of two shapes, so the root is ``oneOf`` a provider and an override (an override has ``override``
and no ``id``, a provider the reverse: never both).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter

from definitions.custom_oauth2.spec import OverrideSpec, ProviderSpec

#: Where the docs site publishes it (relative to the site root) and where the engine serves it.
DOCS_PATH = "schemas/definition.schema.json"
API_PATH = "/v1/schemas/definition.json"


def json_schema() -> dict[str, Any]:
    generated = TypeAdapter(ProviderSpec | OverrideSpec).json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Tether data definition",
        "description": "A provider declared as data (ProviderSpec), or an override of one (OverrideSpec).",
        "oneOf": generated["anyOf"],
        "$defs": generated["$defs"],
    }


def render() -> str:
    """The schema file's text: stable key order and a final newline, so ``--check`` compares text."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
