"""The fast CEL back end: celpy parses, this package compiles the parse tree to Python closures.

``compile_tree(tree)`` turns a tree from ``celpy.Environment.compile`` into a ``Program``; ``Program.evaluate`` runs
it over JSON-shaped Python values with a cost budget and returns plain Python values, raising ``EvalError`` for a
CEL error value. Modules: ``values`` (the value model, equality, ordering), ``operators`` (arithmetic with overflow
checks), ``functions`` (standard and custom functions), ``compiler`` (tree to closures, macros), ``budget`` (the cost
budget), ``regex`` (RE2 for ``matches``: compiled once, memory-capped, charged), ``errors``.

``compile_tree`` raises ``PatternError`` for a literal ``matches`` pattern RE2 refuses.
"""

from __future__ import annotations

from typing import Any

import lark

from engine.celfast.budget import BUDGET_KEY, DEFAULT_LIMIT
from engine.celfast.compiler import Compiler
from engine.celfast.errors import BudgetExceeded, EvalError
from engine.celfast.functions import register_function, unregister_function
from engine.celfast.regex import PatternError
from engine.celfast.values import to_plain

_UNEXPECTED = (TypeError, ValueError, ArithmeticError, KeyError, IndexError, AttributeError, RecursionError)


class Program:
    """A compiled expression. Thread-safe: each evaluation works on its own copy of the activation."""

    __slots__ = ("_qualified", "_run", "_tree")

    def __init__(self, tree: lark.Tree) -> None:
        self._tree = tree
        self._run = Compiler().compile(tree)
        self._qualified = None

    def evaluate(self, activation: dict[str, Any], limit: int = DEFAULT_LIMIT) -> Any:
        """The expression's value as plain Python values (``Uint`` as ``int``, timestamps as ``datetime``)."""
        return to_plain(self.evaluate_raw(activation, limit))

    def evaluate_raw(self, activation: dict[str, Any], limit: int = DEFAULT_LIMIT) -> Any:
        """The expression's value in the fast value model (``Uint`` stays distinct from ``int``)."""
        a = dict(activation)
        a[BUDGET_KEY] = [limit]
        run = self._run
        for name in activation:
            if "." in name:
                run = self._qualified_run()
                break
        try:
            return run(a)
        except EvalError:
            raise
        except _UNEXPECTED as exc:
            raise EvalError(f"evaluation failed: {type(exc).__name__}") from None

    def _qualified_run(self) -> Any:
        if self._qualified is None:
            self._qualified = Compiler(qualified=True).compile(self._tree)
        return self._qualified


def compile_tree(tree: lark.Tree) -> Program:
    return Program(tree)


__all__ = [
    "BudgetExceeded",
    "EvalError",
    "PatternError",
    "Program",
    "compile_tree",
    "register_function",
    "unregister_function",
]
