"""The error value of the fast back end.

CEL errors are values: ``&&``, ``||`` and ``?:`` may absorb them. The compiled closures raise ``EvalError`` and the
logical operators catch it; whatever escapes the whole expression becomes the caller's ``CelError``.
"""

from __future__ import annotations


class EvalError(Exception):
    """A CEL error value (the message names the failure, never an operand's value)."""

    __slots__ = ()

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else "error"


class BudgetExceeded(EvalError):
    """The evaluation spent more than its cost budget (a runaway comprehension or concatenation)."""
