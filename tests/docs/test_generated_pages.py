"""The site's generated pages cover what they are generated from: every ``Settings`` field is a row of the
configuration page (with its variable and a meaning, from its ``#:`` comment), and every route and model of the
app's OpenAPI document is on the API reference. ``mkdocs build --strict`` (scripts/test) renders them; this checks
their content without a build.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from engine.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
HOOKS = ROOT / "scripts" / "docs_hooks"


def hook(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docs_hooks_{name}", HOOKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_every_settings_field_is_a_row_with_its_variable_default_and_meaning() -> None:
    settings_table = hook("settings_table")
    rows = {row.field: row for row in settings_table.settings_rows()}
    assert set(rows) == set(Settings.model_fields)
    table = settings_table.render_table(list(rows.values()))
    for name, row in rows.items():
        assert f"| `{row.variable}` |" in table, name
        assert row.meaning, f"Settings.{name} has no #: comment to document it on the configuration page"
    assert rows["secret_principal_key"].variable == "TETHER_SECRET_PRINCIPAL_KEY"
    assert rows["allowed_return_origins_list"].variable == "TETHER_ALLOWED_RETURN_ORIGINS"
    assert rows["database_url"].default == "`sqlite:///tether.db`"
    assert settings_table.MARKER in (ROOT / "docs" / "configuration.md").read_text()


def test_fields_below_another_without_a_comment_share_its_comment() -> None:
    comments = hook("settings_table").comments_by_field(
        "class Settings:\n    #: Where it binds.\n    host: str = ''\n    port: int = 0\n\n    other: int = 1\n"
    )
    assert comments == {"host": "Where it binds.", "port": "Where it binds.", "other": ""}


def test_every_route_and_model_of_the_openapi_document_is_on_the_api_reference() -> None:
    api_reference = hook("api_reference")
    document = api_reference.openapi_document()
    page = api_reference.render(document)
    operations = [(m, p) for p, item in document["paths"].items() for m in item if m in api_reference.METHODS]
    assert len(operations) >= 30
    for method, path in operations:
        assert f"### `{method.upper()} {path}`" in page, (method, path)
    for name in document["components"]["schemas"]:
        assert f"{{#{api_reference._anchor(name)}}}" in page, name
    assert api_reference.MARKER in (ROOT / "docs" / "api.md").read_text()
