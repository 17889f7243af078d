"""Every error code ``src/`` can raise is listed in ``docs/errors.md``, and every listed code is raised somewhere.

The codes are found with ``ast``, in each of the ways the code base raises or stores one:

- a class-level ``code = "..."`` (``TetherError`` subclasses, ``engine/errors.py`` and the routers' own);
- a ``code="..."`` or ``error_code="..."`` keyword (``TetherError(..., code=...)``, ``RunOutcome(error_code=...)``),
  an ``error=("code", "message")`` keyword (a run finished with that error), and a ``(code, message)`` pair
  returned by a function annotated ``tuple[str, str]`` (why a delivery is refused);
- a ``{"code": "..."}`` dict (envelopes written by hand, ``engine/api/limits.py``) or the same in a bytes literal
  (the webhook fast lane's canned 500);
- ``error_response(status, "code", ...)`` and the status → code table of ``engine/api/errors.py``
  (``_STATUS_CODES`` and its fallback);
- SCIM ``scimType`` values: ``bad_request(detail, "type")``, ``ScimError(status, detail, "type")`` and
  ``{"scimType": "type"}``, checked against the SCIM table of ``docs/errors.md``.

The reverse: a row whose code nothing raises must say it is reserved (its description starts with *reserved*).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from support.hostile import ERRORS_MD, documented_codes

SRC = Path(__file__).resolve().parents[1] / "src"
_BYTES_CODE = re.compile(rb'"code"\s*:\s*"([a-z_]+)"')
#: Literals the scan reads as codes that are not: a local ``code`` that holds something else.
NOT_CODES = {
    "unknown_error": "definitions/slack/api.py: Slack's own error name, read into a local ``code`` for a message",
}
_ROW = re.compile(r"^\|\s*`([A-Za-z_]+)`\s*\|[^|]*\|\s*(.*)$")


def _str(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _name(func: ast.AST) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _assigns_code(target: ast.AST) -> bool:
    return _name(target) == "code" or (isinstance(target, ast.Tuple) and any(_name(t) == "code" for t in target.elts))


def _returns_code_pairs(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A function that answers ``(code, message)``: annotated ``tuple[str, str]`` (or optional)."""
    return function.returns is not None and "tuple[str, str]" in ast.unparse(function.returns)


def _literals(value: ast.AST) -> Iterator[str]:
    if text := _str(value):
        yield text
    elif isinstance(value, ast.IfExp):
        yield from _literals(value.body)
        yield from _literals(value.orelse)


def codes_in(tree: ast.AST) -> Iterator[tuple[str, str, int]]:
    """(kind, value, line) for every code in one module: kind ``code`` or ``scim``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _returns_code_pairs(node):
            # ``def _refusal(…) -> tuple[str, str] | None: return "code", "message"``
            for inner in ast.walk(node):
                pair = inner.value if isinstance(inner, ast.Return) else None
                if isinstance(pair, ast.Tuple) and len(pair.elts) == 2 and (value := _str(pair.elts[0])):
                    yield "code", value, inner.lineno
        if isinstance(node, ast.AnnAssign):  # ``code: ClassVar[str] = "x"`` (a plain ``code = "x"`` is below)
            if _name(node.target) == "code" and (value := _str(node.value)):
                yield "code", value, node.lineno
        elif isinstance(node, ast.Call):
            name = _name(node.func)
            for keyword in node.keywords:
                if keyword.arg in ("code", "error_code") and (value := _str(keyword.value)):
                    yield "code", value, node.lineno
                error = keyword.value if keyword.arg == "error" else None
                if isinstance(error, ast.Tuple) and error.elts and (value := _str(error.elts[0])):
                    yield "code", value, node.lineno
                if keyword.arg == "scim_type" and (value := _str(keyword.value)):
                    yield "scim", value, node.lineno
            if name == "error_response" and len(node.args) >= 2 and (value := _str(node.args[1])):
                yield "code", value, node.lineno
            if name == "bad_request" and len(node.args) >= 2 and (value := _str(node.args[1])):
                yield "scim", value, node.lineno
            if name == "ScimError" and len(node.args) >= 3 and (value := _str(node.args[2])):
                yield "scim", value, node.lineno
            if (
                name == "get"
                and isinstance(node.func, ast.Attribute)
                and _name(node.func.value) == "_STATUS_CODES"
                and len(node.args) >= 2
                and (value := _str(node.args[1]))
            ):
                yield "code", value, node.lineno
        elif isinstance(node, ast.Dict):
            for key, item in zip(node.keys, node.values, strict=True):
                if _str(key) == "code" and (value := _str(item)):
                    yield "code", value, node.lineno
                if _str(key) == "scimType" and (value := _str(item)):
                    yield "scim", value, node.lineno
        elif isinstance(node, ast.Assign) and any(_assigns_code(t) for t in node.targets):
            # ``code = "x"``, ``code = exc.code if … else "x"``, ``code, message = "x", "…"`` in a function
            for target in node.targets:
                pairs = (
                    zip(target.elts, node.value.elts, strict=False)
                    if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple)
                    else [(target, node.value)]
                )
                for name, value in pairs:
                    if _name(name) == "code":
                        for literal in _literals(value):
                            yield "code", literal, node.lineno
        elif isinstance(node, ast.Assign) and any(_name(t) == "_STATUS_CODES" for t in node.targets):
            if isinstance(node.value, ast.Dict):
                for item in node.value.values:
                    if value := _str(item):
                        yield "code", value, node.lineno
        elif isinstance(node, ast.Constant) and isinstance(node.value, bytes):
            for match in _BYTES_CODE.finditer(node.value):
                yield "code", match.group(1).decode(), node.lineno


def raised_codes() -> dict[tuple[str, str], list[str]]:
    """(kind, code) → where it is raised (``path:line``), over every module of ``src/``."""
    found: dict[tuple[str, str], list[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for kind, value, line in codes_in(tree):
            found.setdefault((kind, value), []).append(f"{path.relative_to(SRC)}:{line}")
    return found


def test_the_scan_finds_each_way_a_code_is_raised() -> None:
    # The scanner itself, on a module that raises one code each way: a scanner that finds nothing passes nothing.
    sample = ast.parse(
        "class A(TetherError):\n    code = 'a_class'\nclass B:\n    code: ClassVar[str] = 'an_annotated'\n"
        "TetherError('m', code='a_keyword')\nRunOutcome(x, error_code='an_outcome')\n"
        "executor._finish(r, s, error=('a_tuple', 'm'))\n"
        "send({'error': {'code': 'a_dict', 'message': 'm'}})\nerror_response(400, 'a_response', 'm')\n"
        "_STATUS_CODES = {400: 'a_status'}\n_STATUS_CODES.get(s, 'a_fallback')\n"
        'x = b\'{"error":{"code":"a_bytes"}}\'\n'
        "def g() -> tuple[str, str] | None:\n    return 'a_returned_pair', 'm'\n"
        "def f():\n    code, message = 'a_pair', 'm'\n    code = e.code if e else 'a_fallback_code'\n"
        "bad_request('d', 'scimA')\nScimError(409, 'd', 'scimB')\nd = {'scimType': 'scimC'}\n"
    )
    found = {(kind, value) for kind, value, _ in codes_in(sample)}
    expected = {
        ("code", c)
        for c in (
            "a_class",
            "an_annotated",
            "a_keyword",
            "an_outcome",
            "a_tuple",
            "a_dict",
            "a_response",
            "a_status",
            "a_fallback",
            "a_bytes",
            "a_pair",
            "a_returned_pair",
            "a_fallback_code",
        )
    }
    assert found == expected | {("scim", "scimA"), ("scim", "scimB"), ("scim", "scimC")}


def test_every_code_raised_in_src_is_documented() -> None:
    codes, scim_types = documented_codes()
    found = raised_codes()
    assert len({c for kind, c in found if kind == "code"}) >= 40, "the scan finds far fewer codes than exist"
    missing = {
        f"{c} ({', '.join(where[:3])})"
        for (kind, c), where in found.items()
        if c not in (codes if kind == "code" else scim_types) and c not in NOT_CODES
    }
    assert not missing, f"raised in src/ but not listed in docs/errors.md: {sorted(missing)}"


def _rows() -> Iterator[tuple[str, bool, str]]:
    """(code, in the SCIM table, description) per row of ``docs/errors.md``."""
    scim = False
    for line in ERRORS_MD.read_text().splitlines():
        if line.startswith("#"):
            scim = "scimtype" in line.lower()
        match = _ROW.match(line)
        if match:
            yield match.group(1), scim, match.group(2)


def test_every_documented_code_is_raised_or_reserved() -> None:
    found = raised_codes()
    rows = list(_rows())
    assert len(rows) >= 40
    unraised = [
        code
        for code, scim, description in rows
        if ("scim" if scim else "code", code) not in found and not description.lower().startswith("reserved")
    ]
    assert not unraised, f"listed in docs/errors.md but raised nowhere in src/ (mark reserved or drop): {unraised}"
    names = [(scim, code) for code, scim, _ in rows]
    assert len(names) == len(set(names)), "a code is listed twice"
