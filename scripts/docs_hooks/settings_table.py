"""MkDocs hook: the configuration page's table of engine variables, generated from ``engine.settings.Settings``.

Each field's row takes its variable name from the field (``TETHER_`` + its name, or its alias), its default from
the model and its meaning from the ``#:`` comment above it in ``settings.py`` (a field directly below another with
no comment of its own shares that one's). The page holds the marker ``MARKER`` where the table goes.
"""

from __future__ import annotations

import ast
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _engine import ROOT, use_checkout

MARKER = "<!-- tether:settings-table -->"
PAGE = "configuration.md"
SETTINGS_SOURCE = ROOT / "src" / "engine" / "settings.py"


@dataclass(frozen=True)
class Row:
    field: str
    variable: str
    default: str
    meaning: str


def comments_by_field(source: str) -> dict[str, str]:
    """The ``#:`` comment text that documents each field of ``class Settings``."""
    tree = ast.parse(source)
    lines = source.splitlines()
    settings = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Settings")
    out: dict[str, str] = {}
    previous: tuple[str, int] | None = None  # (field, last line) of the field just above
    for node in settings.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            previous = None
            continue
        name, first = node.target.id, node.lineno - 1
        block: list[str] = []
        index = first - 1
        while index >= 0 and lines[index].strip().startswith("#:"):
            block.insert(0, lines[index].strip()[2:].strip())
            index -= 1
        if block:
            out[name] = " ".join(block)
        elif previous is not None and previous[1] == first - 1:
            out[name] = out.get(previous[0], "")
        else:
            out[name] = ""
        previous = (name, (node.end_lineno or node.lineno) - 1)
    return out


def _default(value: Any) -> str:
    secret = getattr(value, "get_secret_value", None)
    if callable(secret):
        value = secret()
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "`1`" if value else "`0`"
    return f"`{value}`"


def settings_rows() -> list[Row]:
    use_checkout()
    settings = importlib.import_module("engine.settings").Settings
    prefix = settings.model_config.get("env_prefix", "")
    comments = comments_by_field(SETTINGS_SOURCE.read_text())
    rows = []
    for name, info in settings.model_fields.items():
        alias = info.validation_alias if isinstance(info.validation_alias, str) else None
        variable = alias or f"{prefix}{name}".upper()
        rows.append(Row(name, variable, _default(info.default), comments.get(name, "")))
    return rows


def render_table(rows: list[Row]) -> str:
    out = ["| variable | default | meaning |", "|---|---|---|"]
    for row in rows:
        meaning = row.meaning.replace("``", "`").replace("|", "\\|") or "—"
        out.append(f"| `{row.variable}` | {row.default} | {meaning} |")
    return "\n".join(out)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise PluginError(f"{PAGE} lost its marker {MARKER}: the settings table has nowhere to go")
    return markdown.replace(MARKER, render_table(settings_rows()))
