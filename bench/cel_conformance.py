"""CEL conformance: the official cel-spec simple tests against both back ends (``python -m bench cel_conformance``).

Runs the sections Tether's mappings use, per back end (``fast``: engine.celfast; ``celpy``: celpy 0.5.0's
interpreted runner, the one the engine used before), prints the pass counts and rewrites docs/cel-conformance.md.
The data comes from ``scripts/fetch_cel_spec.py`` (npm ``@bufbuild/cel-spec``, cached in ``.cache/cel-spec/``).
A test passes when the value is equal with its exact CEL type (``1u`` is not ``1``, NaN equals NaN), or when an
error was expected and the evaluation gave an error value; a test whose expected value or bindings need protobuf
messages counts as failed for both.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT / "src", ROOT / "scripts"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import celpy  # noqa: E402
from celpy import celtypes  # noqa: E402

from engine import celfast  # noqa: E402
from engine.celfast.values import CelType, Uint, from_celpy, to_celpy  # noqa: E402

SECTIONS = ("basic", "comparisons", "logic", "macros", "fields", "string", "integer_math", "lists", "timestamps")
BACKENDS = ("fast", "celpy")
REPORT = ROOT / "docs" / "cel-conformance.md"


class Unsupported(Exception):
    """A value this harness cannot express without protobuf messages."""


def load_tests() -> dict[str, list[dict[str, Any]]]:
    from fetch_cel_spec import fetch  # scripts/fetch_cel_spec.py

    data = json.loads(fetch().read_text())
    sections: dict[str, list[dict[str, Any]]] = {}
    for suite in data["tests"]["suites"]:
        if suite["name"] in SECTIONS:
            sections[suite["name"]] = [
                {**test["original"], "group": sub["name"]} for sub in suite["suites"] for test in sub["tests"]
            ]
    return sections


def value(proto: dict[str, Any]) -> Any:
    """A cel.expr.Value (protobuf JSON) in the fast value model."""
    (kind, v), *_ = proto.items() if proto else (("nullValue", None),)
    if kind == "nullValue":
        return None
    if kind == "boolValue":
        return bool(v)
    if kind == "int64Value":
        return int(v)
    if kind == "uint64Value":
        return Uint(int(v))
    if kind == "doubleValue":
        return float(v)
    if kind == "stringValue":
        return str(v)
    if kind == "bytesValue":
        return base64.b64decode(v)
    if kind == "listValue":
        return [value(x) for x in v.get("values", [])]
    if kind == "mapValue":
        return {value(e["key"]): value(e["value"]) for e in v.get("entries", [])}
    if kind == "typeValue":
        return CelType(v)
    raise Unsupported(kind)


_CELPY_TYPE_NAMES = {
    celtypes.BoolType: "bool",
    celtypes.IntType: "int",
    celtypes.UintType: "uint",
    celtypes.DoubleType: "double",
    celtypes.StringType: "string",
    celtypes.BytesType: "bytes",
    celtypes.ListType: "list",
    celtypes.MapType: "map",
    celtypes.TypeType: "type",
    type(None): "null_type",
}


def same(x: Any, y: Any) -> bool:
    """Equal with the same CEL type."""
    if isinstance(x, CelType) or isinstance(y, CelType):
        name = lambda t: t.name if isinstance(t, CelType) else _CELPY_TYPE_NAMES.get(t, repr(t))  # noqa: E731
        return name(x) == name(y)
    if type(x) is not type(y):
        return False
    if type(x) is float:
        return x == y or (math.isnan(x) and math.isnan(y))
    if isinstance(x, list):
        return len(x) == len(y) and all(same(a, b) for a, b in zip(x, y, strict=True))
    if isinstance(x, dict):
        if len(x) != len(y):
            return False
        return all(any(same(k, k2) and same(v, v2) for k2, v2 in y.items()) for k, v in x.items())
    return bool(x == y)


_environment = celpy.Environment(runner_class=celpy.InterpretedRunner)


def run_one(backend: str, test: dict[str, Any]) -> bool:
    """Whether ``backend`` passes one conformance test."""
    try:
        bindings = {name: value(b["value"]) for name, b in (test.get("bindings") or {}).items()}
        expected_error = "evalError" in test
        expected = None if expected_error else value(test.get("value") or {})
    except Unsupported:
        return False
    try:
        ast = _environment.compile(test["expr"])
    except celpy.CELParseError:
        return False
    try:
        if backend == "fast":
            result = celfast.compile_tree(ast).evaluate_raw(bindings)
        else:
            program = _environment.program(ast)
            result = program.evaluate({k: to_celpy(v) for k, v in bindings.items()})
            if isinstance(result, celpy.CELEvalError):
                raise result
            result = from_celpy(result)
    except (celfast.EvalError, celpy.CELEvalError):
        return expected_error
    except Exception:  # a crash is a failure, not an error value
        return False
    return not expected_error and same(result, expected)


def run(backend: str, sections: dict[str, list[dict[str, Any]]] | None = None) -> dict[str, list[str]]:
    """Per section, the names (``group/name``) of the tests ``backend`` passes."""
    logging.getLogger("celpy").setLevel(logging.CRITICAL)
    sections = sections if sections is not None else load_tests()
    return {
        section: [f"{t['group']}/{t['name']}" for t in tests if run_one(backend, t)]
        for section, tests in sections.items()
    }


def report(sections: dict[str, list[dict[str, Any]]], passed: dict[str, dict[str, list[str]]]) -> str:
    lines = [
        "# CEL conformance",
        "",
        "Generated by `python -m bench cel_conformance` from the official cel-spec simple tests (cel-spec v0.25.1 via",
        "npm `@bufbuild/cel-spec` 0.6.1, fetched by `scripts/fetch_cel_spec.py`), for the sections Tether's mappings",
        "use. `fast` is `engine.celfast`; `celpy` is celpy 0.5.0's interpreted runner. Every test counts (no",
        "known-failure list). Tests that need protobuf messages (`TestAllTypes`, `Any`) fail on both; the fast back",
        "end builds only the `google.protobuf.*Value` wrappers. `tests/cel/test_conformance.py` asserts these counts",
        "and that the fast back end passes every test celpy passes.",
        "",
        "| section | tests | fast | celpy | fast only | celpy only |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    totals = [0, 0, 0, 0, 0]
    for section in SECTIONS:
        fast, ref = set(passed["fast"][section]), set(passed["celpy"][section])
        row = [len(sections[section]), len(fast), len(ref), len(fast - ref), len(ref - fast)]
        totals = [a + b for a, b in zip(totals, row, strict=True)]
        lines.append(f"| {section} | " + " | ".join(str(n) for n in row) + " |")
    lines.append("| **total** | " + " | ".join(f"**{n}**" for n in totals) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    sections = load_tests()
    passed = {backend: run(backend, sections) for backend in BACKENDS}
    text = report(sections, passed)
    REPORT.write_text(text)
    print(text, end="")
    counts = {f"{b}_{s}": len(passed[b][s]) for b in BACKENDS for s in SECTIONS}
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
