"""CEL ``matches`` is RE2 in both back ends (issue 16 item 1): linear time, refusals at compile time, budgeted.

Never a wall-clock assertion: the catastrophic pattern is asserted by its result (under Python's backtracking ``re``
it does not finish, and the suite's timeout fails the test).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from engine import celfast
from engine.api import create_app
from engine.api.principal import create_api_key
from engine.catalog.registry import Registry
from engine.cel import compile_expression
from engine.celfast import regex
from engine.errors import CelError, DefinitionError
from engine.store.database import Database
from support import sample_definition as s
from support.sample_runtime import start_sample_runtime

BACKENDS = ("fast", "celpy")

#: Patterns RE2 refuses: not linear-time (backreference, lookaround), not RE2 syntax, or over the memory cap.
REFUSED = [
    pytest.param(r"(a)\\1", id="backreference"),
    pytest.param(r"(?P<x>a)(?P=x)", id="named-backreference"),
    pytest.param("(?=a)", id="lookahead"),
    pytest.param("(?!a)b", id="negative-lookahead"),
    pytest.param("(?<=a)b", id="lookbehind"),
    pytest.param("a++", id="possessive"),
    pytest.param("(", id="unbalanced"),
    pytest.param(r"a\\Z", id="python-end-anchor"),
    pytest.param(r"\\pL{1000}", id="over-max-mem"),
]


def evaluate(text: str, backend: str, **payload: object) -> object:
    return compile_expression(text, backend=backend).evaluate({"payload": payload})


@pytest.mark.parametrize("backend", BACKENDS)
def test_catastrophic_backtracking_pattern_is_linear(backend: str) -> None:
    hostile = "a" * 5000 + "!"
    assert evaluate('payload.s.matches("^(a+)+$")', backend, s=hostile) is False
    assert evaluate('payload.s.matches("^(a|aa)+$")', backend, s=hostile) is False
    assert evaluate('payload.s.matches("^(a+)+$")', backend, s="a" * 5000) is True


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("pattern", REFUSED)
def test_refused_literal_pattern_is_a_compile_error(backend: str, pattern: str) -> None:
    forms = ("payload.s.matches({})", "matches(payload.s, {})", ".matches(payload.s, {})", "payload.s.matches(({}))")
    for text in (form.format(f'"{pattern}"') for form in forms):
        with pytest.raises(CelError) as caught:
            compile_expression(text, backend=backend)
        assert "does not compile" in caught.value.message and "RE2" in caught.value.message


@pytest.mark.parametrize("backend", BACKENDS)
def test_refused_literal_in_an_untaken_branch_still_does_not_compile(backend: str) -> None:
    with pytest.raises(CelError, match="does not compile"):
        compile_expression('false && payload.s.matches("(?=x)")', backend=backend)
    with pytest.raises(CelError, match="does not compile"):
        compile_expression('payload.l.exists(x, x.matches(("(a)\\\\1")))', backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_refused_dynamic_pattern_is_an_evaluation_error_without_the_pattern(backend: str) -> None:
    expression = compile_expression("payload.s.matches(payload.p)", backend=backend)
    assert expression.evaluate({"payload": {"s": "abc", "p": "b+"}}) is True
    for pattern in (r"(a)\1", "(?=a)", "(", "secret-(?<=x)"):
        with pytest.raises(CelError) as caught:
            expression.evaluate({"payload": {"s": "abc", "p": pattern}})
        assert "invalid regular expression" in caught.value.message
        assert "secret" not in caught.value.message  # the pattern may be payload data
    # a refused dynamic pattern is an error value: || absorbs it like any other
    absorbed = compile_expression("payload.s.matches(payload.p) || true", backend=backend)
    assert absorbed.evaluate({"payload": {"s": "abc", "p": "(?=a)"}}) is True


@pytest.mark.parametrize("backend", BACKENDS)
def test_literal_pattern_is_compiled_once_at_compile_time(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    expression = compile_expression('payload.s.matches("^ab+c$")', backend=backend)

    def no_compiling(*args: object, **kwargs: object) -> object:
        raise AssertionError("a literal pattern was compiled at evaluation")

    monkeypatch.setattr(regex.re2, "compile", no_compiling)
    regex._cached.cache_clear()
    assert expression.evaluate({"payload": {"s": "abbbc"}}) is True
    assert expression.evaluate({"payload": {"s": "ac"}}) is False


#: (subject, pattern, RE2's answer): RE2 semantics, where several differ from Python's ``re``.
TABLE = [
    ("abc", "b", True),  # unanchored search, as CEL specifies
    ("abc", "^b", False),
    ("abc", "", True),
    ("ab\n", "ab$", False),  # RE2's $ is the end of text; Python's re also matches before a final newline
    ("a\nb", "^b", False),  # no multi-line unless (?m)
    ("a\nb", "(?m)^b$", True),
    ("a\nb", "a.b", False),
    ("a\nb", "(?s)a.b", True),
    ("ABC", "(?i)abc", True),
    ("é", "^.$", True),  # a character, not a UTF-8 byte
    ("café", "caf\\\\pL", True),  # Unicode classes (Python's re has no \\p)
    ("é", "\\\\w", False),  # \\w, \\d and \\b are ASCII in RE2
    ("٣", "\\\\d", False),
    ("abc", "[[:alpha:]]+", True),  # POSIX classes
    ("a.b", "\\\\Qa.b\\\\E", True),  # literal text
    ("axb", "\\\\Qa.b\\\\E", False),
    ("2026-12-03", "^\\\\d{4}-\\\\d{2}-\\\\d{2}$", True),
    ("aaa", "^a{2,3}$", True),
    ("aaaa", "^a{2,3}$", False),
    ("xyz", "(?P<name>y)", True),
]


@pytest.mark.parametrize(("subject", "pattern", "expected"), TABLE)
def test_both_back_ends_agree_on_re2_semantics(subject: str, pattern: str, expected: bool) -> None:
    literal = f'payload.s.matches("{pattern}")'
    dynamic = "payload.s.matches(payload.p)"
    answers = {
        (backend, text): compile_expression(text, backend=backend).evaluate(
            {"payload": {"s": subject, "p": compile_expression(f'"{pattern}"').evaluate({})}}
        )
        for backend in BACKENDS
        for text in (literal, dynamic)
    }
    assert set(answers.values()) == {expected}, answers


@pytest.mark.parametrize("backend", BACKENDS)
def test_matches_on_a_non_string_is_an_overload_error(backend: str) -> None:
    for text in ('payload.n.matches("a")', "payload.s.matches(payload.n)", 'matches(1, "a")'):
        with pytest.raises(CelError):
            compile_expression(text, backend=backend).evaluate({"payload": {"s": "a", "n": 1}})


def test_matches_is_charged_by_input_and_pattern_length() -> None:
    program = celfast.compile_tree(compile_expression('payload.s.matches("a")')._ast)
    activation = {"payload": {"s": "b" * 1000}}
    assert program.evaluate(activation, limit=1100) is False
    with pytest.raises(celfast.BudgetExceeded):
        program.evaluate(activation, limit=900)  # the list-free expression costs its input's length
    dynamic = celfast.compile_tree(compile_expression("payload.s.matches(payload.p)")._ast)
    with pytest.raises(celfast.BudgetExceeded):
        dynamic.evaluate({"payload": {"s": "b", "p": "a" * 1000}}, limit=900)  # ... and its pattern's


def test_a_filter_looping_matches_over_a_big_list_hits_the_budget() -> None:
    # 400 items: the comprehension alone costs 400 units; the matches calls cost 400 x 5001
    expression = compile_expression('payload.items.all(i, i.matches("^(a+)+$"))', backend="fast")
    with pytest.raises(CelError, match="evaluation cost budget exceeded"):
        expression.evaluate({"payload": {"items": ["a" * 5000] * 400}})
    assert expression.evaluate({"payload": {"items": ["a" * 50] * 400}}) is True


@pytest.mark.parametrize("part", ["filter", "map"])
def test_registration_refuses_a_mapping_with_a_refused_pattern(part: str) -> None:
    expression = {
        "filter": 'payload.kind.matches("(?=item)")',
        "map": '{"source_identifier": payload.id, "name": payload.name, "asset_type": '
        'payload.kind.matches("(a)\\\\1") ? "a" : "b"}',
    }[part]
    broken = replace(s.ITEM_MAPPING, **{part: expression})
    with pytest.raises(DefinitionError) as caught:
        Registry().register(replace(s.definition, mappings=(broken,)))
    error = caught.value
    assert (error.code, error.rule) == ("invalid_definition", "cel_compile")
    assert error.part == f"mapping (asset, 'item') {part}"
    assert "refused by RE2" in error.reason


# -- at the API: a tenant saving a filter -------------------------------------------------------------------------


@pytest.fixture
async def app(
    sqlite_database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    # the filter is refused before anything is written, so one database kind is enough here
    runtime = start_sample_runtime(monkeypatch, sqlite_database.url, str(tmp_path))
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://tether.test") as client:
        client.runtime = runtime  # type: ignore[attr-defined]
        yield client
    runtime.close()


async def test_saving_a_filter_with_a_refused_pattern_is_a_422(app: httpx.AsyncClient) -> None:
    key, _ = create_api_key(app.runtime.db, tenant="t1", role="server")  # type: ignore[attr-defined]
    headers = {"Authorization": f"Bearer {key}"}
    created = await app.post("/v1/integrations", json={"definition_id": "sample", "owner_id": "alice"}, headers=headers)
    assert created.status_code == 201, created.text
    iid = created.json()["id"]
    saved = 'payload.kind.matches("^it")'
    ok = await app.patch(f"/v1/integrations/{iid}", json={"filter_expr": saved}, headers=headers)
    assert ok.status_code == 200, ok.text
    for pattern in (r"(a)\\1", "(?=a)", "(?<!a)b"):
        refused = await app.patch(
            f"/v1/integrations/{iid}", json={"filter_expr": f'payload.kind.matches("{pattern}")'}, headers=headers
        )
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["code"] == "invalid_integration_filter"
        assert "refused by RE2" in error["message"]
    kept = await app.get(f"/v1/integrations/{iid}", headers=headers)
    assert kept.json()["filter_expr"] == saved


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_lone_surrogate_is_an_error_value_not_a_crash(backend: str) -> None:
    # JSON can carry "\ud800"; RE2 reads UTF-8 and cannot encode it
    expression = compile_expression('payload.s.matches("a")', backend=backend)
    with pytest.raises(CelError, match="not valid Unicode"):
        expression.evaluate({"payload": {"s": "a\ud800"}})
    absorbed = compile_expression('payload.s.matches("a") || true', backend=backend)
    assert absorbed.evaluate({"payload": {"s": "a\ud800"}}) is True
    with pytest.raises(CelError, match="does not compile"):
        compile_expression('payload.s.matches("\\ud800")', backend=backend)
