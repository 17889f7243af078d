"""CEL expressions: compiled once, evaluated many times.

celpy parses every expression and is the semantic reference. ``compile_expression`` is called at registration (and
when a tenant saves a filter), so a bad expression is refused before any record reaches it; evaluation takes plain
JSON-shaped Python values and returns plain Python values.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass, field
from typing import Any

import celpy
import lark
from celpy import celtypes
from celpy.adapter import json_to_cel

from engine.errors import CelError

#: The variables every mapping expression may use.
MAPPING_VARIABLES = ("envelope", "variant", "resource", "action", "payload")

# celpy's CompiledRunner execs into a module-global activation, so it is not safe across threads; the
# interpreted runner is. celpy also logs evaluation errors with operand values, which may be payload data.
_environment = celpy.Environment(runner_class=celpy.InterpretedRunner)
logging.getLogger("celpy").setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class Expression:
    """A compiled CEL expression."""

    text: str
    _ast: lark.Tree = field(repr=False)
    _program: celpy.Runner = field(repr=False)

    def evaluate(self, activation: dict[str, Any]) -> Any:
        """Evaluate over JSON-shaped values; raises ``CelError`` on a CEL error value."""
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


def compile_expression(text: str) -> Expression:
    """Parse and compile; raises ``CelError`` with the parser's reason (the text is the caller's own)."""
    try:
        ast = _environment.compile(text)
        program = _environment.program(ast)
    except celpy.CELParseError as exc:
        where = f" at line {exc.line}, column {exc.column}" if getattr(exc, "line", None) else ""
        raise CelError(f"does not compile: syntax error{where}") from None
    return Expression(text, ast, program)


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
    if isinstance(value, celtypes.ListType):
        return [to_python(v) for v in value]
    if isinstance(value, celtypes.MapType):
        return {to_python(k): to_python(v) for k, v in value.items()}
    return value
