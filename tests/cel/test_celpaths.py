"""``engine.kit.celpaths.text``: the first non-empty string of several optional paths, on both CEL back ends."""

from __future__ import annotations

from typing import Any

import pytest

from engine.cel import compile_expression
from engine.kit.celpaths import text

CASES: list[tuple[dict[str, Any], Any]] = [
    ({"a": "x", "b": "y"}, "x"),
    ({"a": "", "b": "y"}, "y"),  # proto3 JSON's unset string
    ({"a": None, "b": "y"}, "y"),
    ({"b": "y"}, "y"),
    ({"a": 3, "b": "y"}, "y"),  # not a string: no name
    ({"a": {"k": 1}, "b": ""}, None),
    ({}, None),
]


@pytest.mark.parametrize("backend", ["fast", "celpy"])
@pytest.mark.parametrize(("payload", "expected"), CASES)
def test_text_takes_the_first_non_empty_string(backend: str, payload: dict[str, Any], expected: Any) -> None:
    expression = compile_expression(text("a", "b"), backend=backend)
    assert expression.evaluate({"payload": payload}) == expected
