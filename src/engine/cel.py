"""CEL expressions: compiled once, evaluated many times.

celpy parses every expression and is the semantic reference. ``compile_expression`` is called at registration (and
when a tenant saves a filter), so a bad expression is refused before any record reaches it; evaluation takes plain
JSON-shaped Python values and returns plain Python values.

Two back ends evaluate, chosen once at import by ``TETHER_CEL_BACKEND``: ``fast`` (the default: ``engine.celfast``
compiles celpy's parse tree to Python closures and evaluates the payload as it is, with a cost budget) and ``celpy``
(celpy's own interpreted runner over ``json_to_cel``-converted values). celpy parses for both.

``matches`` is RE2 in both (``engine.celfast.regex``; celpy's own binding is replaced by ours): a literal pattern RE2
refuses (backreference, lookaround, bad syntax, too large) makes the expression not compile.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import celpy
import lark
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.evaluation import celstr

from engine import celfast
from engine.celfast.functions import celpy_functions, celpy_matches
from engine.celfast.regex import PatternError, compile_pattern
from engine.errors import CelError

#: The variables every mapping expression may use.
MAPPING_VARIABLES = ("envelope", "variant", "resource", "action", "payload")

# celpy's CompiledRunner execs into a module-global activation, so it is not safe across threads; the
# interpreted runner is. celpy also logs evaluation errors with operand values, which may be payload data.
_environment = celpy.Environment(runner_class=celpy.InterpretedRunner)
logging.getLogger("celpy").setLevel(logging.CRITICAL)

BACKENDS = ("fast", "celpy")
#: The back end ``compile_expression`` uses unless told otherwise (``TETHER_CEL_BACKEND``, read once).
BACKEND = os.environ.get("TETHER_CEL_BACKEND", "fast").strip().lower() or "fast"
if BACKEND not in BACKENDS:
    raise ValueError(f"TETHER_CEL_BACKEND must be one of {', '.join(BACKENDS)}, not {BACKEND!r}")


@dataclass(frozen=True)
class Expression:
    """A compiled CEL expression."""

    text: str
    _ast: lark.Tree = field(repr=False)
    _program: celpy.Runner | None = field(repr=False)
    _fast: celfast.Program | None = field(default=None, repr=False)

    @property
    def backend(self) -> str:
        return "fast" if self._fast is not None else "celpy"

    def evaluate(self, activation: dict[str, Any]) -> Any:
        """Evaluate over JSON-shaped values; raises ``CelError`` on a CEL error value."""
        fast = self._fast
        if fast is not None:
            try:
                return fast.evaluate(activation)
            except celfast.EvalError as exc:
                raise CelError(f"evaluation failed: {exc.message}") from None
        assert self._program is not None
        try:
            result = self._program.evaluate({k: json_to_cel(v) for k, v in activation.items()})
        except celpy.CELEvalError as exc:
            raise CelError(f"evaluation failed: {_reason(exc)}") from None
        except (TypeError, ValueError, ArithmeticError, KeyError, IndexError) as exc:
            raise CelError(f"evaluation failed: {type(exc).__name__}") from None
        return to_python(result)

    def map_literal_keys(self) -> list[str] | None:
        """When the whole expression is a map literal with string-literal keys, those keys; else ``None``."""
        node = _unwrap(self._ast)
        if node is None or node.data != "map_lit":
            return None
        inits = node.children[0] if node.children else None
        if inits is None:
            return []
        keys: list[str] = []
        for key_expr in inits.children[0::2]:
            literal = _unwrap(key_expr)
            if literal is None or literal.data != "literal":
                return None
            token = literal.children[0]
            if not (isinstance(token, lark.Token) and token.type in ("STRING_LIT", "MLSTRING_LIT")):
                return None
            keys.append(_string_literal(str(token)))
        return keys


def compile_expression(text: str, backend: str | None = None) -> Expression:
    """Parse and compile; raises ``CelError`` with the parser's reason (the text is the caller's own).

    ``backend`` (``fast`` or ``celpy``) overrides ``TETHER_CEL_BACKEND`` (benchmarks and differential tests).
    """
    backend = backend or BACKEND
    if backend not in BACKENDS:
        raise ValueError(f"unknown CEL back end {backend!r}")
    try:
        ast = _environment.compile(text)
    except celpy.CELParseError as exc:
        where = f" at line {exc.line}, column {exc.column}" if getattr(exc, "line", None) else ""
        raise CelError(f"does not compile: syntax error{where}") from None
    try:
        if backend == "fast":
            return Expression(text, ast, None, celfast.compile_tree(ast))
        literals = {pattern: compile_pattern(pattern) for pattern in literal_patterns(ast)}
    except PatternError as exc:
        # the pattern is the expression author's own text (a tenant's filter, a definition's mapping)
        shown = exc.pattern if len(exc.pattern) <= 80 else exc.pattern[:77] + "..."
        raise CelError(f"does not compile: matches pattern {shown!r} refused by RE2: {exc.reason}") from None
    functions = {**celpy_functions(), "matches": celpy_matches(literals)}
    return Expression(text, ast, _environment.program(ast, functions=functions))


def literal_patterns(tree: lark.Tree) -> list[str]:
    """The string-literal patterns of every ``x.matches("…")`` and ``matches(x, "…")`` call in a parse tree."""
    found: list[str] = []
    for node in tree.iter_subtrees():
        if node.data == "member_dot_arg":
            children = [c for c in node.children if c is not None]
            name, position = children[1], 0
        elif node.data in ("ident_arg", "dot_ident_arg"):
            children = [c for c in node.children if c is not None]
            name, position = children[0], 1
        else:
            continue
        if str(name) != "matches":
            continue
        exprlist = children[-1] if isinstance(children[-1], lark.Tree) and children[-1].data == "exprlist" else None
        args = [c for c in exprlist.children if c is not None] if exprlist is not None else []
        if len(args) <= position:
            continue
        literal = _unwrap(args[position])
        while literal is not None and literal.data == "paren_expr":  # ("…") is a literal for the fast compiler too
            literal = _unwrap(literal.children[0])
        if literal is None or literal.data != "literal":
            continue
        token = literal.children[0]
        if isinstance(token, lark.Token) and token.type in ("STRING_LIT", "MLSTRING_LIT"):
            try:
                found.append(str(celstr(token)))
            except (ValueError, UnicodeError):
                continue  # an invalid string literal is its own evaluation error
    return found


def _reason(error: celpy.CELEvalError) -> str:
    """The innermost message of a CEL error value (celpy nests them as args)."""
    args: Any = error.args
    while isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], tuple) and args[2]:
        if isinstance(args[0], str) and args[0] != "evaluation error":
            break
        args = args[2]
    return str(args[0]) if isinstance(args, tuple) and args else "error"


def _unwrap(tree: Any) -> lark.Tree | None:
    """Descend through the single-child precedence levels to the primary node."""
    node = tree
    while isinstance(node, lark.Tree) and node.data in (
        "expr",
        "conditionalor",
        "conditionaland",
        "relation",
        "addition",
        "multiplication",
        "unary",
        "member",
        "primary",
    ):
        if len(node.children) != 1:
            return None
        node = node.children[0]
    return node if isinstance(node, lark.Tree) else None


def _string_literal(token: str) -> str:
    import ast as python_ast

    raw = token
    if raw[:1] in "rR":
        return raw[2:-1] if raw[1:4] not in ('"""', "'''") else raw[4:-3]
    try:
        return str(python_ast.literal_eval(raw))
    except (ValueError, SyntaxError):
        return raw.strip("\"'")


def to_python(value: Any) -> Any:
    """Turn a CEL value into a plain Python value (JSON-shaped where possible)."""
    if isinstance(value, celtypes.BoolType):
        return bool(value)
    if isinstance(value, celtypes.IntType | celtypes.UintType):
        return int(value)
    if isinstance(value, celtypes.DoubleType):
        return float(value)
    if isinstance(value, celtypes.StringType):
        return str(value)
    if isinstance(value, celtypes.BytesType):
        return bytes(value)
    if isinstance(value, celtypes.TimestampType):
        return datetime.datetime.fromtimestamp(value.timestamp(), tz=datetime.UTC)
    if isinstance(value, celtypes.DurationType):
        return datetime.timedelta(seconds=value.total_seconds())
    if isinstance(value, list | tuple):  # celpy's list concatenation returns a plain list of celpy values
        return [to_python(v) for v in value]
    if isinstance(value, dict):
        return {to_python(k): to_python(v) for k, v in value.items()}
    return value
