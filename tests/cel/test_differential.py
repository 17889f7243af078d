"""Differential tests: hypothesis builds CEL expressions from a small grammar and JSON payloads; the fast back end and
celpy must give the same value, or both an error.

One divergence is deliberate (docs/decisions.md): where celpy 0.5.0 refuses a comparison of mixed types ("no
matching overload" for ``==``, ``<``… or ``in`` on ``1 == 1.0``, ``null == 1``), the fast back end follows the CEL
spec (numbers compare by value, other mixed types are unequal): a fast value is accepted where celpy's error is that
overload error. Conversely celpy evaluates some ill-typed operations (``true + true`` is 2, ``0 + 7u`` is 7, a
non-bool ``filter`` predicate); the fast back end's "no such overload" error is accepted there. Every other
difference fails the test.
"""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.cel import compile_expression
from engine.errors import CelError

KEYS = ("a", "b", "s", "l", "m", "f", "n", "t")

ints = st.one_of(
    st.integers(-20, 20),
    st.sampled_from([2**63 - 1, -(2**63), 2**62, 4_000_000_000, -4_000_000_000]),
)
json_scalars = st.one_of(
    st.none(), st.booleans(), ints, st.floats(-1e6, 1e6, allow_nan=False), st.text("abcé ", max_size=5)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)),
    max_leaves=8,
)
payloads = st.fixed_dictionaries(
    {},
    optional={
        "a": ints,
        "b": ints,
        "s": st.text("abcé ", max_size=6),
        "l": st.lists(ints, max_size=5),
        "m": st.dictionaries(st.sampled_from(KEYS), json_scalars, max_size=3),
        "f": st.floats(-1e3, 1e3, allow_nan=False),
        "n": st.none(),
        "t": st.booleans(),
    },
)


def _literal() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(-5, 5).map(str),
        st.sampled_from(["9223372036854775807", "-9223372036854775808", "0", "7u", "0u", "18446744073709551615u"]),
        st.sampled_from(["1.5", "-0.5", "2.0", "0.0"]),
        st.sampled_from(['"a"', '"abc"', "''", '"é"', "true", "false", "null", "[]", "[1, 2, 3]", '{"a": 1}']),
    )


def _field() -> st.SearchStrategy[str]:
    return st.sampled_from(KEYS).flatmap(
        lambda k: st.sampled_from([f"payload.{k}", f'payload["{k}"]', f"payload.m.{k}"])
    )


#: Macro targets and string-method receivers: lists, maps and strings (celpy also iterates the characters of a string
#: and calls string methods on lists, neither of which CEL defines).
RANGES = st.sampled_from(["payload.l", "[1, 2, 3]", "[]", "payload.m", '{"a": 1, "b": 0}', "[payload.a, payload.b]"])
STRINGS = st.sampled_from(["payload.s", '"abc"', "''", "payload.m.s", "string(payload.a)"])

BINARY = ["+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "&&", "||", "in"]


def _compound(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, st.sampled_from(BINARY), children).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(children, children, children).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"),
        children.map(lambda c: f"!{c}"),
        children.map(lambda c: f"-{c}"),
        children.map(lambda c: f"size({c})"),
        children.map(lambda c: f"string({c})"),
        children.map(lambda c: f"[{c}, 1]"),
        st.sampled_from(KEYS).map(lambda k: f"has(payload.{k})"),
        st.sampled_from(KEYS).map(lambda k: f"has(payload.m.{k})"),
        st.tuples(st.sampled_from(["map", "filter", "all", "exists", "exists_one"]), RANGES, children).map(
            lambda t: f"{t[1]}.{t[0]}(x, {t[2].replace('payload.a', 'x')})"
        ),
        st.tuples(st.sampled_from(["startsWith", "endsWith", "contains", "matches"]), STRINGS, children).map(
            lambda t: f"{t[1]}.{t[0]}({t[2]})"
        ),
    )


expressions = st.recursive(st.one_of(_literal(), _field()), _compound, max_leaves=6)


def _outcome(text: str, backend: str, activation: dict) -> tuple[str, object]:
    try:
        return "value", compile_expression(text, backend=backend).evaluate(activation)
    except CelError as exc:
        return "error", str(exc)


def _same(x: object, y: object) -> bool:
    if type(x) is not type(y):
        return False
    if isinstance(x, float):
        return x == y or (math.isnan(x) and math.isnan(y))
    if isinstance(x, list):
        return len(x) == len(y) and all(_same(a, b) for a, b in zip(x, y, strict=True))  # type: ignore[arg-type]
    if isinstance(x, dict):
        return x.keys() == y.keys() and all(_same(x[k], y[k]) for k in x)  # type: ignore[union-attr,index]
    return x == y


def _celpy_mixed_type_refusal(message: str) -> bool:
    return ("no matching overload" in message and "relation_" in message) or "no such overload" in message


def _celpy_does_not_absorb_macro_errors(text: str) -> bool:
    """celpy 0.5.0 propagates an error raised inside a ``map``/``filter`` body even where ``&&``, ``||`` or ``?:``
    must absorb it (``false && [1].map(x, {}["a"])`` is ``false`` in CEL, an error in celpy)."""
    has_macro = ".map(" in text or ".filter(" in text
    return has_macro and any(op in text for op in ("&&", "||", "?"))


def _fast_refuses_ill_typed(message: str) -> bool:
    """celpy 0.5.0 evaluates some ill-typed operations (``true + true`` is 2, ``0 + 7u`` is 7, a ``filter`` predicate
    of ``0`` drops the item); CEL has no such overload, and the fast back end says so."""
    return re.search(r"no such overload: [^(]+\(", message) is not None


def test_errors_inside_macros_are_absorbed_by_logic() -> None:
    """The case that separates the back ends above, pinned: the fast back end follows the CEL spec."""
    activation = {"payload": {}}
    assert compile_expression('false && [1].map(x, payload["a"])', backend="fast").evaluate(activation) is False
    assert compile_expression('true || [1].map(x, payload["a"])[0]', backend="fast").evaluate(activation) is True
    with pytest.raises(CelError):
        compile_expression('true && [1].map(x, payload["a"])[0]', backend="fast").evaluate(activation)


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(expressions, payloads)
def test_fast_and_celpy_agree(text: str, payload: dict) -> None:
    activation = {"payload": payload, "action": "created", "variant": "default", "resource": "r", "envelope": {}}
    fast = _outcome(text, "fast", activation)
    reference = _outcome(text, "celpy", activation)
    if fast[0] == reference[0] == "error":
        return
    if fast[0] == reference[0] == "value":
        assert _same(fast[1], reference[1]), (text, payload, fast, reference)
        return
    if fast[0] == "value":
        assert _celpy_mixed_type_refusal(str(reference[1])) or _celpy_does_not_absorb_macro_errors(text), (
            text,
            payload,
            fast,
            reference,
        )
    else:
        assert _fast_refuses_ill_typed(str(fast[1])), (text, payload, fast, reference)
