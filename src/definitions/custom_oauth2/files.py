"""Reading definition files: TOML or JSON text → a validated ``ProviderSpec`` or ``OverrideSpec``.

A file that breaks the format is refused with a ``DefinitionFileError`` listing each problem as
``path:line: key: what is wrong [rule]``: the line is the offending key's (``locate``), the rule the name of the
check (pydantic's error type, or ours: ``secret_prefix``, ``definition_id``…), the text a sentence for an operator.
Values are never quoted back: a file may hold a secret pasted in the wrong place.

Validation is pydantic's, on the models the JSON Schema is generated from (``schema``): the two cannot disagree,
and the model also checks what a JSON Schema cannot say (secret names start with the definition's ID).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from definitions.custom_oauth2.locate import KeyPath, json_key_lines, line_of, toml_key_lines
from definitions.custom_oauth2.spec import OverrideSpec, ProviderSpec
from engine import ConfigurationError

SUFFIXES = (".toml", ".json")
_KINDS = {
    "dict": "a table",
    "list": "an array",
    "tuple": "an array",
    "string": "a string",
    "bool": "true or false",
    "int": "an integer",
    "float": "a number",
}


@dataclass(frozen=True)
class Problem:
    """One broken rule of a file: where (``line`` ``None`` when the key is absent), which key, why, which rule."""

    line: int | None
    key: str
    message: str
    rule: str


class DefinitionFileError(ConfigurationError):
    """A definition file breaks the format; start-up stops with every problem, each with its line and rule."""

    def __init__(self, path: Path | str, problems: Sequence[Problem]) -> None:
        self.path = str(path)
        self.problems = tuple(problems)
        lines = [
            f"{self.path}{f':{p.line}' if p.line else ''}: {p.key or '<file>'}: {p.message} [{p.rule}]"
            for p in self.problems
        ]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class DataFile:
    """A parsed file with where its keys are, so later checks (duplicate IDs, override targets) can point too."""

    path: Path
    spec: ProviderSpec | OverrideSpec
    lines: dict[KeyPath, int]

    def error(self, key: str, message: str, rule: str) -> DefinitionFileError:
        return DefinitionFileError(self.path, [Problem(self.lines.get((key,)), key, message, rule)])


def read_file(path: str | Path) -> DataFile:
    """Parse and validate one ``.toml`` / ``.json`` definition file."""
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise DefinitionFileError(path, [Problem(None, "", "a definition file is .toml or .json", "file_type")])
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problem = Problem(None, "", f"cannot be read ({type(exc).__name__})", "file_read")
        raise DefinitionFileError(path, [problem]) from None
    data, lines = _parse(path, text)
    model: type[BaseModel] = OverrideSpec if "override" in data else ProviderSpec
    try:
        spec = model.model_validate(data)
    except ValidationError as exc:
        problems = sorted((_problem(err, lines, model) for err in exc.errors()), key=_in_file_order)
        raise DefinitionFileError(path, problems) from None
    return DataFile(path, spec, lines)  # type: ignore[arg-type]


def load_spec(path: str | Path) -> ProviderSpec:
    """A provider file's spec (an override file is refused: it declares no provider of its own)."""
    file = read_file(path)
    if not isinstance(file.spec, ProviderSpec):
        raise file.error("override", "an override file changes a definition; it declares none", "not_a_provider")
    return file.spec


def parse_spec(data: dict[str, Any], origin: str = "customOauth2 data") -> ProviderSpec:
    """Validate already parsed content (no text, so no lines); the error names the keys, never values."""
    try:
        return ProviderSpec.model_validate(data)
    except ValidationError as exc:
        raise DefinitionFileError(origin, [_problem(err, {}, ProviderSpec) for err in exc.errors()]) from None


def _parse(path: Path, text: str) -> tuple[dict[str, Any], dict[KeyPath, int]]:
    try:
        if path.suffix == ".toml":
            data: Any = tomllib.loads(text)
            lines = toml_key_lines(text)
        else:
            data = json.loads(text)
            lines = json_key_lines(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message ends with "(at line N, column M)": the position is in the text, the value is not.
        raise DefinitionFileError(path, [Problem(None, "", f"not valid TOML: {exc}", "toml_syntax")]) from None
    except json.JSONDecodeError as exc:
        message = f"not valid JSON: {exc.msg} (column {exc.colno})"
        raise DefinitionFileError(path, [Problem(exc.lineno, "", message, "json_syntax")]) from None
    if not isinstance(data, dict):
        raise DefinitionFileError(path, [Problem(1, "", "the top level is a table of keys", "top_level")])
    return data, lines


def _problem(err: ErrorDetails, lines: dict[KeyPath, int], model: type[BaseModel]) -> Problem:
    loc = tuple(err["loc"])
    key = ".".join(str(part) for part in loc)
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "missing":
        message = "this required key is missing"
        line = line_of(lines, loc[:-1]) if len(loc) > 1 else None
        return Problem(line, key, message, kind)
    if kind == "extra_forbidden":
        known = _known_keys(model, loc[:-1])
        close = get_close_matches(str(loc[-1]), known, n=1)
        message = "the format has no such key" + (f" (did you mean {close[0]!r}?)" if close else "")
    elif kind == "literal_error":
        message = f"must be one of {ctx.get('expected', '')}"
    elif kind.endswith("_type") and kind[: -len("_type")] in _KINDS:
        message = f"must be {_KINDS[kind[: -len('_type')]]}"
    elif kind == "model_type":
        message = "must be a table (an inline { … } or a [section])"
    else:
        message = err["msg"].removeprefix("Value error, ")
    return Problem(line_of(lines, loc), key, message, kind)


def _in_file_order(problem: Problem) -> tuple[bool, int]:
    """Problems by line; the missing keys (no line) last."""
    return (problem.line is None, problem.line or 0)


def _known_keys(model: type[BaseModel], loc: KeyPath) -> list[str]:
    """The keys (aliases) the model at ``loc`` accepts, for a did-you-mean; empty where that is not a model."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = next((f for n, f in current.model_fields.items() if (f.alias or n) == part), None)
        if field is None:
            return []
        current = _model_in(field.annotation)
        if current is None:
            return []
    return [f.alias or n for n, f in current.model_fields.items()]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
