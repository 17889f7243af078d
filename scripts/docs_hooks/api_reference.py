"""MkDocs hook: the API reference page, rendered from the OpenAPI document the engine's FastAPI app builds.

The app is built the way ``tether serve`` builds it (``Runtime.start`` + ``create_app``) but over a SQLite file and
a master key in a temporary directory, so a build needs no service and no state of the checkout. The document is
also published beside the page as ``openapi.json``. The page holds the marker ``MARKER`` where the reference goes.
"""

from __future__ import annotations

import importlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _engine import use_checkout

MARKER = "<!-- tether:api-reference -->"
PAGE = "api.md"
METHODS = ("get", "post", "put", "patch", "delete")
#: How route tags read as section titles (others are capitalised).
TAG_TITLES = {"oauth": "OAuth", "oidc": "OIDC", "scim": "SCIM"}

_document: dict[str, Any] | None = None


def openapi_document() -> dict[str, Any]:
    """The app's ``/openapi.json``, built once per process."""
    global _document
    if _document is None:
        use_checkout()
        settings_module = importlib.import_module("engine.settings")
        runtime_module = importlib.import_module("engine.runtime")
        api = importlib.import_module("engine.api")
        crypto = importlib.import_module("engine.custody.crypto")
        with tempfile.TemporaryDirectory(prefix="tether-docs-") as state:
            settings = settings_module.Settings(
                database_url=f"sqlite:///{state}/docs.db",
                state_dir=state,
                secret_master_key=crypto.generate_master_key(),
                enabled_definitions="*",
                definition_modules="",
            )
            runtime = runtime_module.Runtime.start(settings)
            try:
                _document = api.create_app(runtime).openapi()
            finally:
                runtime.close()
    return _document


# -- rendering -----------------------------------------------------------------------------------------------


def _cell(text: Any) -> str:
    return " ".join(str(text or "").replace("``", "`").replace("|", "\\|").split()) or "—"


def _anchor(name: str) -> str:
    return "schema-" + "".join(c if c.isalnum() else "-" for c in name).lower()


def type_of(schema: dict[str, Any]) -> str:
    """A short Markdown type: a link for a named schema, ``list[…]``, unions with ``or``."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{_anchor(name)})"
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return " or ".join(type_of(s) for s in schema[key])
    kind = schema.get("type")
    if kind == "array":
        return f"list[{type_of(schema.get('items', {}))}]"
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    if kind == "object" and "additionalProperties" in schema and schema["additionalProperties"] not in (True, {}):
        return f"map[string, {type_of(schema['additionalProperties'])}]"
    name = kind or "any"
    return f"{name} ({schema['format']})" if "format" in schema else name


def _parameters(operation: dict[str, Any]) -> list[str]:
    params = operation.get("parameters", [])
    if not params:
        return []
    out = ["**Parameters**", "", "| name | in | type | required | description |", "|---|---|---|---|---|"]
    for p in params:
        required = "yes" if p.get("required") else "no"
        out.append(
            f"| `{p['name']}` | {p['in']} | {type_of(p.get('schema', {}))} | {required} | "
            f"{_cell(p.get('description') or p.get('schema', {}).get('description'))} |"
        )
    return [*out, ""]


def _body(operation: dict[str, Any]) -> list[str]:
    body = operation.get("requestBody")
    if not body:
        return []
    lines = ["**Request body**" + (" (required)" if body.get("required") else " (optional)"), ""]
    for media, content in body.get("content", {}).items():
        lines.append(f"- `{media}`: {type_of(content.get('schema', {}))}")
    return [*lines, ""]


def _responses(operation: dict[str, Any]) -> list[str]:
    out = ["**Responses**", "", "| status | description | body |", "|---|---|---|"]
    for status, response in sorted(operation.get("responses", {}).items()):
        bodies = [type_of(c.get("schema", {})) for c in response.get("content", {}).values() if c.get("schema")]
        out.append(f"| `{status}` | {_cell(response.get('description'))} | {', '.join(bodies) or '—'} |")
    return [*out, ""]


def render_operation(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    lines = [f"### `{method.upper()} {path}`", "", f"**{operation.get('summary', '')}**", ""]
    if operation.get("description"):
        lines += [operation["description"].replace("``", "`"), ""]
    return lines + _parameters(operation) + _body(operation) + _responses(operation)


def render_schema(name: str, schema: dict[str, Any]) -> list[str]:
    lines = [f"### {name} {{#{_anchor(name)}}}", ""]
    if schema.get("description"):
        lines += [_cell(schema["description"]), ""]
    properties = schema.get("properties", {})
    if "enum" in schema:
        return [*lines, "One of " + ", ".join(f"`{v}`" for v in schema["enum"]) + ".", ""]
    if not properties:
        return [*lines, f"Type: {type_of(schema)}.", ""]
    required = set(schema.get("required", []))
    lines += ["| field | type | required | description |", "|---|---|---|---|"]
    for field, prop in properties.items():
        needed = "yes" if field in required else "no"
        lines.append(f"| `{field}` | {type_of(prop)} | {needed} | {_cell(prop.get('description'))} |")
    return [*lines, ""]


def render(document: dict[str, Any]) -> str:
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                tag = (item[method].get("tags") or ["other"])[0]
                by_tag.setdefault(tag, []).append((path, method, item[method]))
    lines: list[str] = []
    for tag, operations in by_tag.items():
        lines += [f"## {TAG_TITLES.get(tag, tag.capitalize())}", ""]
        for path, method, operation in operations:
            lines += render_operation(path, method, operation)
    lines += ["## Schemas", ""]
    for name, schema in sorted(document.get("components", {}).get("schemas", {}).items()):
        lines += render_schema(name, schema)
    return "\n".join(lines)


# -- hooks ---------------------------------------------------------------------------------------------------


def on_files(files: Any, config: Any) -> Any:
    text = json.dumps(openapi_document(), indent=2)
    files.append(File.generated(config, "openapi.json", content=text))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise PluginError(f"{PAGE} lost its marker {MARKER}: the API reference has nowhere to go")
    return markdown.replace(MARKER, render(openapi_document()))
