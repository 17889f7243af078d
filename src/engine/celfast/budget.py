"""The evaluation cost budget.

Every evaluation gets a fresh budget, stored in the activation under ``BUDGET_KEY`` (not a CEL identifier, so no
expression can read it). Comprehensions charge the size of their range before iterating, and concatenations charge the
size of their result, so a runaway ``map`` over a huge list, or nested comprehensions multiplying each other, stop
with an error before doing the work instead of hanging.
"""

from __future__ import annotations

from engine.celfast.errors import BudgetExceeded
from engine.settings import Settings

#: The activation key of the per-evaluation budget (a one-element list: the units left).
BUDGET_KEY = "#budget"

#: Units per evaluation: one per comprehension iteration and one per element (or character) built by a
#: concatenation. A mapping over a record with lists of a few thousand items stays far below it.
DEFAULT_LIMIT = Settings().cel_cost_limit


def charge(activation: dict, units: int) -> None:
    """Spend ``units``; raise ``BudgetExceeded`` when the budget runs out."""
    left = activation[BUDGET_KEY]
    left[0] -= units
    if left[0] < 0:
        raise BudgetExceeded("evaluation cost budget exceeded")
