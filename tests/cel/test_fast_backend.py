"""The fast back end: CEL semantics over JSON payloads, the cost budget, custom functions, back-end selection."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from engine import cel
from engine.cel import compile_expression
from engine.celfast import register_function, unregister_function
from engine.errors import CelError

ROOT = Path(__file__).resolve().parents[2]


def fast(text: str, **activation: object) -> object:
    return compile_expression(text, backend="fast").evaluate(activation)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("false && (1 / 0 == 1)", False),
        ("(1 / 0 == 1) && false", False),
        ("(1 / 0 == 1) || true", True),
        ("true ? 1 : 1 / 0", 1),
        ("has(p.a)", True),
        ("has(p.missing)", False),
        ("has(p.missing.deeper)", False),  # celpy's reading: the selection fails, so false
        ("p.a == null", True),
        ("[1, 2, 3].all(x, x > 0)", True),
        ("[1, 2, 3].exists(x, x > 2)", True),
        ("[1, 2, 3].exists_one(x, x > 1)", False),
        ("[1, 2, 3].map(x, x * 2)", [2, 4, 6]),
        ("[1, 2, 3].filter(x, x % 2 == 1)", [1, 3]),
        ("[1, 0].exists(x, 1 / x == 1)", True),  # an error in one iteration is absorbed by a true one
        ('{"a": 1}.all(k, k == "a")', True),
        ("1 == 1.0", True),
        ("1u == 1", True),
        ('"a" in ["b", "a"]', True),
        ('"k" in {"k": 1}', True),
        ("size('héllo')", 5),
        ("'abc'.startsWith('ab') && 'abc'.endsWith('bc') && 'abc'.contains('b')", True),
        ("'abc'.matches('^a.c$')", True),
        ("-7 / 2", -3),
        ("-7 % 3", -1),
        ("7u / 2u", 3),
        ("1.0 / 0.0", float("inf")),
        ("timestamp('2024-01-02T03:04:05Z').getFullYear()", 2024),
        ("timestamp('2024-01-01T00:00:00Z') + duration('90m') > timestamp('2024-01-01T01:00:00Z')", True),
        ("duration('1h') - duration('30m') == duration('30m')", True),
        ("type(1u) == uint && type(1) == int && type(1.0) == double", True),
        ("p.n.x + 1", 2),
        ('p["a"]', None),
    ],
)
def test_semantics(text: str, expected: object) -> None:
    assert fast(text, p={"a": None, "n": {"x": 1}}) == expected


@pytest.mark.parametrize(
    "text",
    [
        "p.missing",  # a missing map key is an error, not null
        "p['missing']",
        "9223372036854775807 + 1",
        "-9223372036854775808 - 1",
        "-(-9223372036854775807 - 1)",
        "0u - 1u",
        "18446744073709551615u + 1u",
        "9223372036854775807 * 2",
        "1 / 0",
        "1 % 0",
        "1 + 1.0",  # no implicit int/double arithmetic
        "1 + 1u",
        "[1][1]",
        "[1][-1]",
        "true && (1 / 0 == 1)",
        "1 ? 2 : 3",
        "!1",
        "undeclared",
        "nope(1)",
        "[1, 2].all(x, x / 0 == 1)",
        "{'a': 1, 'a': 2}",
    ],
)
def test_errors(text: str) -> None:
    with pytest.raises(CelError):
        fast(text, p={"a": 1})


def test_values_keep_the_caller_s_plain_types() -> None:
    result = fast("{'u': 3u, 'ts': timestamp('2024-01-01T00:00:00Z'), 'd': duration('2s'), 'l': [1u]}")
    assert result == {
        "u": 3,
        "ts": datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC),
        "d": datetime.timedelta(seconds=2),
        "l": [1],
    }
    assert type(result["u"]) is int and type(result["l"][0]) is int


def test_payload_is_not_modified_and_comprehension_variables_do_not_leak() -> None:
    payload = {"items": [1, 2, 3]}
    activation = {"payload": payload, "x": "outer"}
    expression = compile_expression("payload.items.map(x, x + 1) + [x]", backend="fast")
    with pytest.raises(CelError):  # [x] is the outer string: list + [string] is fine, but x + 1 uses the loop var
        compile_expression("x + 1", backend="fast").evaluate(activation)
    assert expression.evaluate(activation) == [2, 3, 4, "outer"]
    assert activation == {"payload": {"items": [1, 2, 3]}, "x": "outer"}


def test_qualified_names() -> None:
    assert fast("a.b.c", **{"a.b.c": 1, "a": {"b": {"c": 2}}}) == 1
    assert fast("a.b.c", **{"a.b": {"c": 3}}) == 3


def test_runaway_map_stops_with_an_error_not_a_hang() -> None:
    expression = compile_expression("payload.items.map(a, payload.items.map(b, payload.items.map(c, a + b + c)))")
    # The budget error is the proof (10^9 iterations would run for minutes; pytest's timeout catches a hang).
    # No wall-clock assert: one failed CI under load (issue 16, item 10).
    with pytest.raises(CelError, match="budget"):
        expression.evaluate({"payload": {"items": list(range(1000))}})


def test_runaway_concatenation_stops() -> None:
    expression = compile_expression("payload.items.map(a, payload.items + payload.items)")
    with pytest.raises(CelError, match="budget"):
        expression.evaluate({"payload": {"items": list(range(2000))}})


def test_has_does_not_hide_an_exhausted_budget() -> None:
    expression = compile_expression("has(payload.items.map(a, payload.items.map(b, 1)).x)")
    with pytest.raises(CelError, match="budget"):
        expression.evaluate({"payload": {"items": list(range(5000))}})


def test_custom_functions_reach_both_back_ends() -> None:
    register_function("slugify", lambda text: text.lower().replace(" ", "-"))
    try:
        for backend in ("fast", "celpy"):
            expression = compile_expression("slugify(payload.name) + '/' + payload.name.slugify()", backend=backend)
            assert expression.evaluate({"payload": {"name": "Hello World"}}) == "hello-world/hello-world"
            with pytest.raises(CelError):
                expression.evaluate({"payload": {"name": 3}})
    finally:
        unregister_function("slugify")
    with pytest.raises(ValueError):
        register_function("size", len)


def test_thread_safety() -> None:
    expression = compile_expression("payload.items.map(x, x * payload.k)")
    failures: list[object] = []

    def work(k: int) -> None:
        for _ in range(300):
            if expression.evaluate({"payload": {"items": [1, 2, 3], "k": k}}) != [k, 2 * k, 3 * k]:
                failures.append(k)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_public_api_and_default_backend() -> None:
    expression = compile_expression('{"a": payload.x, "b": 2}')
    assert expression.map_literal_keys() == ["a", "b"]
    assert expression.text == '{"a": payload.x, "b": 2}'
    assert cel.MAPPING_VARIABLES == ("envelope", "variant", "resource", "action", "payload")
    if "TETHER_CEL_BACKEND" not in os.environ:
        assert cel.BACKEND == "fast" and expression.backend == "fast"
    with pytest.raises(CelError, match="does not compile"):
        compile_expression("1 +")


@pytest.mark.parametrize(("setting", "expected"), [("celpy", "celpy"), ("fast", "fast"), ("", "fast")])
def test_backend_setting(setting: str, expected: str) -> None:
    code = "from engine.cel import compile_expression as c; print(c('1 + 1').backend, c('1 + 1').evaluate({}))"
    env = {**os.environ, "TETHER_CEL_BACKEND": setting, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [expected, "2"]


def test_unknown_backend_setting_is_refused() -> None:
    env = {**os.environ, "TETHER_CEL_BACKEND": "rust", "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run([sys.executable, "-c", "import engine.cel"], env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "TETHER_CEL_BACKEND" in out.stderr
