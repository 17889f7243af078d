"""A deployment's definition files: ``TETHER_DEFINITIONS_DIR`` and file entries of ``TETHER_DEFINITION_MODULES``
loaded at start-up through the registry, override files changing a data provider's mode, onboarding, access and
scopes, and bad files refused with the path, the line of the offending key and the rule.

Start-up is ``load_registry`` (what ``tether serve`` and ``tether definitions check`` call), with the whole built-in
catalog, so a clash with a Python definition is a real one; the CLI test runs the real ``tether`` process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from definitions.custom_oauth2 import DataOAuth2, DefinitionFileError, read_file
from definitions.custom_oauth2.locate import json_key_lines, line_of, toml_key_lines
from definitions.todoist.oauth import TodoistClient
from engine.catalog.loading import load_registry
from engine.catalog.registry import Registry
from engine.errors import ConfigurationError, DefinitionError
from engine.settings import Settings

TESTS = Path(__file__).resolve().parents[1]
#: This checkout's code first, whatever the venv's editable install points at.
PYTHONPATH = os.pathsep.join([str(TESTS.parent / "src"), str(TESTS)])
TETHER = str(Path(sys.executable).with_name("tether"))

ACME = """\
#:schema ../docs/schemas/definition.schema.json
id = "acme_crm"
name = "Acme CRM"
mode = "optional"
clientId = { secret = "ACME_CRM_CLIENT_ID" }
clientSecret = { secret = "ACME_CRM_CLIENT_SECRET" }
authorizeUrl = "https://login.acme.example/oauth/authorize"
tokenUrl = "https://login.acme.example/oauth/token"
accountUrl = "https://api.acme.example/v2/me"
accountIdPath = "user.id"
scopes = ["contacts.read"]
upgradeScopes = ["contacts.read", "contacts.write"]

[headers]
Acme-Version = "2024-01"
"""


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def registry(**settings: str) -> Registry:
    return load_registry(Settings(database_url="sqlite://", **settings))  # type: ignore[arg-type]


def refused(**settings: str) -> DefinitionFileError:
    with pytest.raises(DefinitionFileError) as caught:
        registry(**settings)
    return caught.value


def acme_json(**change: object) -> str:
    data: dict[str, object] = {
        "$schema": "https://tether.example/schemas/definition.schema.json",
        "id": "acme_hr",
        "name": "Acme HR",
        "clientId": {"secret": "ACME_HR_CLIENT_ID"},
        "clientSecret": {"secret": "ACME_HR_CLIENT_SECRET"},
        "authorizeUrl": "https://hr.acme.example/authorize",
        "tokenUrl": "https://hr.acme.example/token",
        "accountUrl": "https://hr.acme.example/me",
        "accountIdPath": "id",
    }
    data.update(change)
    return json.dumps(data, indent=2) + "\n"


# -- loading -----------------------------------------------------------------------------------------------


def test_every_file_of_every_definitions_dir_is_registered(tmp_path: Path) -> None:
    write(tmp_path / "one", "acme_crm.toml", ACME)
    write(tmp_path / "two", "acme_hr.json", acme_json())
    write(tmp_path / "two", "notes.txt", "not a definition: ignored")
    loaded = registry(definitions_dir=os.pathsep.join([str(tmp_path / "one"), str(tmp_path / "two")]))
    crm, hr = loaded.get("acme_crm"), loaded.get("acme_hr")
    assert crm.mode == "optional" and hr.mode == "manual"
    assert [c.connection_id() for c in crm.connections] == ["AcmeCrmOAuth"]
    assert "github_app" in loaded and "notion" in loaded  # beside the catalog, not instead of it


def test_a_definition_modules_entry_may_be_a_toml_file(tmp_path: Path) -> None:
    path = write(tmp_path, "acme_crm.toml", ACME)
    loaded = registry(definition_modules=f"support.sample_definition, {path}")
    assert "acme_crm" in loaded and "sample" in loaded
    settings = Settings(definition_modules=f"support.sample_definition,{path}")
    assert settings.extra_definition_modules() == ["support.sample_definition"]
    assert settings.definition_files() == [str(path)]


def test_a_definitions_dir_that_is_not_a_folder_stops_start_up(tmp_path: Path) -> None:
    error = refused(definitions_dir=str(tmp_path / "absent"))
    assert str(tmp_path / "absent") in str(error) and "[definitions_dir]" in str(error)


# -- overrides ---------------------------------------------------------------------------------------------


def test_an_override_changes_a_built_in_data_providers_mode_onboarding_access_and_scopes(tmp_path: Path) -> None:
    write(
        tmp_path,
        "notion.toml",
        """\
override = "notion"
mode = "required"
onboarding = "afterAuth"
access = "write"
scopes = ["read:pages", "read:databases"]
upgradeScopes = ["read:pages", "read:databases", "update:pages"]
""",
    )
    notion = registry(definitions_dir=str(tmp_path)).get("notion")
    assert (notion.mode, notion.onboarding) == ("required", "after_auth")
    [connection] = notion.connections
    assert connection.connection_id() == "NotionOAuth"  # the stable ID does not move
    auth = connection.auth
    assert isinstance(auth, DataOAuth2)
    assert auth.scopes == ("read:pages", "read:databases", "update:pages")  # write access starts with these
    assert auth.upgrade_scopes == ("read:pages", "read:databases", "update:pages")
    assert auth.token_url == "https://api.notion.com/v1/oauth/token"  # what the override does not say stays


def test_an_override_keeps_a_python_definitions_operations_working(tmp_path: Path) -> None:
    write(tmp_path, "todoist.json", json.dumps({"override": "todoist", "scopes": ["data:read", "project:read"]}))
    todoist = registry(definitions_dir=str(tmp_path)).get("todoist")
    [connection] = todoist.connections
    assert connection.auth is not None and connection.auth.scopes == ("data:read", "project:read")  # type: ignore[attr-defined]
    assert todoist.mode == "optional"  # unchanged
    # The operations' client is still the connection's: registration checked it (undeclared_client).
    assert TodoistClient in connection.clients and all(
        op.client in todoist.clients for op in todoist.operations if op.client is not None
    )


@pytest.mark.parametrize(
    ("text", "line", "rule", "words"),
    [
        (
            'override = "notion"\nmode = "optional"\ntokenUrl = "https://evil.example/token"\n',
            3,
            "extra_forbidden",
            "tokenUrl",
        ),
        ('mode = "required"\noverride = "nothing_like_it"\n', 2, "override_target", "no definition"),
        ('override = "slack"\nmode = "required"\n', 1, "override_target", "not declared as data"),
        ('override = "notion"\nmode = "sometimes"\n', 2, "literal_error", "'required', 'optional' or 'manual'"),
        ('override = "notion"\nid = "notion"\n', 2, "extra_forbidden", "no such key"),
    ],
)
def test_a_bad_override_stops_start_up_at_its_line(tmp_path: Path, text: str, line: int, rule: str, words: str) -> None:
    path = write(tmp_path, "override.toml", text)
    error = refused(definitions_dir=str(tmp_path))
    assert str(error).startswith(f"{path}:{line}: ") and f"[{rule}]" in str(error) and words in str(error)


def test_two_overrides_of_one_definition_are_refused(tmp_path: Path) -> None:
    first = write(tmp_path, "a.toml", 'override = "notion"\nmode = "required"\n')
    second = write(tmp_path, "b.toml", '# b\noverride = "notion"\nmode = "optional"\n')
    error = refused(definitions_dir=str(tmp_path))
    assert str(error).startswith(f"{second}:2: override: {first} already overrides") and "[duplicate_override]" in str(
        error
    )


# -- duplicate IDs -----------------------------------------------------------------------------------------


def test_a_file_reusing_a_python_definitions_id_is_refused_at_its_id_line(tmp_path: Path) -> None:
    path = write(tmp_path, "todoist.toml", ACME.replace("acme_crm", "todoist").replace("ACME_CRM", "TODOIST"))
    error = refused(definitions_dir=str(tmp_path))
    assert str(error).startswith(f"{path}:2: id: 'todoist' is already the ID of a definition loaded before")
    assert 'override = "todoist"' in str(error) and "[duplicate_definition]" in str(error)


def test_two_files_with_one_id_are_refused_naming_both(tmp_path: Path) -> None:
    first = write(tmp_path / "a", "acme_crm.toml", ACME)
    second = write(tmp_path / "b", "crm.toml", "\n\n" + ACME)
    error = refused(definitions_dir=os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")]))
    assert str(error).startswith(f"{second}:4: id: 'acme_crm' is already the ID of {first}")


def test_a_python_definition_after_a_file_is_still_caught_by_the_registry(tmp_path: Path) -> None:
    """Modules load before files, so the loader sees them; the registry's own rule stays the last word."""
    path = write(tmp_path, "sample.toml", ACME.replace("acme_crm", "sample").replace("ACME_CRM", "SAMPLE"))
    with pytest.raises(DefinitionFileError, match=r"\[duplicate_definition\]"):
        registry(definition_modules=f"support.sample_definition,{path}")
    from definitions.custom_oauth2 import load_definition
    from support.sample_definition import definition as sample

    duplicate = Registry()
    duplicate.register(load_definition(path))
    with pytest.raises(DefinitionError, match=r"\[duplicate_definition\]"):
        duplicate.register(sample)


# -- bad files: path, line, rule ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "line", "key", "rule", "words"),
    [
        ('mode = "optional"', 'mode = "always"', 4, "mode", "literal_error", "must be one of"),
        ('tokenUrl = "', 'tokenURL = "', 8, "tokenURL", "extra_forbidden", "did you mean 'tokenUrl'?"),
        ('secret = "ACME_CRM_CLIENT_ID"', 'secret = "OTHER_CLIENT_ID"', 5, "clientId", "secret_prefix", "ACME_CRM_"),
        ('secret = "ACME_CRM_CLIENT_ID"', 'secret = "acme"', 5, "clientId.secret", "secret_name", "UPPER_SNAKE"),
        ('Acme-Version = "2024-01"', "Acme-Version = 2024", 15, "headers.Acme-Version", "string_type", "a string"),
        ('id = "acme_crm"', 'id = "Acme"', 2, "id", "definition_id", "snake_case"),
        ('scopes = ["contacts.read"]', 'scopes = "contacts.read"', 11, "scopes", "tuple_type", "an array"),
        (
            'clientId = { secret = "ACME_CRM_CLIENT_ID" }',
            'clientId = "literal-id-value"',
            5,
            "clientId",
            "model_type",
            "a table",
        ),
    ],
)
def test_a_bad_file_stops_start_up_with_path_line_key_and_rule(
    tmp_path: Path, old: str, new: str, line: int, key: str, rule: str, words: str
) -> None:
    assert old in ACME
    path = write(tmp_path, "acme_crm.toml", ACME.replace(old, new))
    error = refused(definitions_dir=str(tmp_path))
    problem = error.problems[0]  # a misspelt key also leaves its right spelling missing: listed after
    assert (problem.line, problem.key, problem.rule) == (line, key, rule)
    first = str(error).splitlines()[0]
    assert first.startswith(f"{path}:{line}: {key}: ") and words in first and first.endswith(f"[{rule}]")
    assert "literal-id-value" not in str(error)  # values are never quoted back
    assert isinstance(error, ConfigurationError)


def test_a_missing_key_is_named_without_a_line_and_every_problem_is_listed(tmp_path: Path) -> None:
    text = ACME.replace('accountIdPath = "user.id"\n', "").replace('mode = "optional"', 'mode = "nope"')
    path = write(tmp_path, "acme_crm.toml", text)
    error = refused(definitions_dir=str(tmp_path))
    assert str(error).splitlines() == [
        f"{path}:4: mode: must be one of 'required', 'optional' or 'manual' [literal_error]",
        f"{path}: accountIdPath: this required key is missing [missing]",
    ]


def test_toml_and_json_syntax_errors_name_the_position(tmp_path: Path) -> None:
    toml = write(tmp_path / "t", "broken.toml", 'id = "x"\nname = \n')
    error = refused(definitions_dir=str(tmp_path / "t"))
    assert str(error).startswith(f"{toml}: <file>: not valid TOML: ") and "line 2" in str(error)
    broken = write(tmp_path / "j", "broken.json", '{\n  "id": "x",\n  "name": \n}\n')
    error = refused(definitions_dir=str(tmp_path / "j"))
    assert str(error).startswith(f"{broken}:4: <file>: not valid JSON") and "[json_syntax]" in str(error)


def test_a_bad_json_file_points_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "acme_hr.json", acme_json(access="all", headers={"X-Ok": "1", "X-Bad": 2}))
    error = refused(definitions_dir=str(tmp_path))
    lines = {p.key: p.line for p in error.problems}
    text = path.read_text().splitlines()
    assert '"access"' in text[lines["access"] - 1] and '"X-Bad"' in text[lines["headers.X-Bad"] - 1]


def test_definitions_check_fails_start_up_naming_the_file_line_and_rule(tmp_path: Path) -> None:
    path = write(tmp_path / "defs", "acme_crm.toml", ACME.replace('mode = "optional"', 'mode = "always"'))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env.update(
        {
            "TETHER_DATABASE_URL": f"sqlite:///{tmp_path / 't.db'}",
            "PYTHONPATH": PYTHONPATH,
            "TETHER_DEFINITIONS_DIR": str(tmp_path / "defs"),
        }
    )
    result = subprocess.run(
        [TETHER, "definitions", "check"], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path
    )
    assert result.returncode == 1
    assert f"{path}:4: mode: must be one of" in result.stderr and "[literal_error]" in result.stderr
    write(tmp_path / "defs", "acme_crm.toml", ACME)
    result = subprocess.run(
        [TETHER, "definitions", "check"], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr


# -- the line scanners -------------------------------------------------------------------------------------


def test_toml_key_lines_follow_tables_dotted_and_quoted_keys_and_skip_strings_and_arrays() -> None:
    text = """\
# comment = 1
a = "x = 1 # not a key"
b.c = 2
"quoted.key" = 3
list = [
  "fake = 4",
]
doc = \"\"\"
inner = 5
\"\"\"
[t]
k = 6
[[items]]
name = "first"
[[items]]
name = "second"
[t.sub]
'lit' = 7
[items.meta]
x = 8
"""
    lines = toml_key_lines(text)
    assert lines[("a",)] == 2 and lines[("b", "c")] == 3 and lines[("b",)] == 3 and lines[("quoted.key",)] == 4
    assert ("fake",) not in lines and ("inner",) not in lines and ("comment",) not in lines
    assert lines[("t", "k")] == 12 and lines[("items", 0, "name")] == 14 and lines[("items", 1, "name")] == 16
    assert lines[("t", "sub", "lit")] == 18
    assert lines[("items", 1, "meta", "x")] == 20  # a sub-table of the last [[items]]
    assert line_of(lines, ("list", 0)) == 5 and line_of(lines, ("items", 1, "absent")) == 15
    assert line_of(lines, ("nowhere",)) is None


def test_json_key_lines_follow_objects_and_arrays() -> None:
    text = '{\n  "a": 1,\n  "b": {\n    "c": [\n      "x",\n      {"d": null}\n    ]\n  },\n  "e\\u00e9": true\n}\n'
    lines = json_key_lines(text)
    assert lines[("a",)] == 2 and lines[("b", "c")] == 4 and lines[("b", "c", 0)] == 5
    assert lines[("b", "c", 1, "d")] == 6 and lines[("eé",)] == 9


def test_the_editor_hints_are_accepted(tmp_path: Path) -> None:
    """``#:schema`` is a TOML comment for Taplo; ``$schema`` a key for JSON editors, accepted by the format."""
    assert read_file(write(tmp_path, "acme_crm.toml", ACME)).spec.id == "acme_crm"  # type: ignore[union-attr]
    assert read_file(write(tmp_path, "acme_hr.json", acme_json())).spec.id == "acme_hr"  # type: ignore[union-attr]


def test_the_docs_examples_load_as_a_definitions_dir() -> None:
    """docs/data-definitions.md includes these files: the worked example and the override example."""
    loaded = registry(definitions_dir=str(TESTS.parent / "docs" / "examples"))
    crm = loaded.get("acme_crm")
    assert crm.onboarding == "after_auth" and crm.connections[0].auth.revoke_url  # type: ignore[union-attr]
    notion = loaded.get("notion")
    assert (notion.mode, notion.onboarding) == ("required", "after_auth")
    assert "update:pages" in notion.connections[0].auth.scopes  # type: ignore[union-attr]  # access = "write"


def test_a_registry_rule_broken_by_a_file_names_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path, "acme_crm.toml", ACME.replace("https://login.acme.example/oauth/token", "http://x.example/t")
    )
    with pytest.raises(DefinitionError) as caught:
        registry(definitions_dir=str(tmp_path))
    assert caught.value.rule == "https_only" and f"(declared in {path})" in str(caught.value)
    with pytest.raises(DefinitionError) as caught:  # a Python definition's own error is left as it was
        registry(definition_modules="support.broken_definition")
    assert "declared in" not in str(caught.value)
