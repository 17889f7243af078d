"""CEL evaluation cost per record (``python -m bench cel``), side by side in one run.

Back ends: the fast back end (``engine.celfast`` through ``engine.cel``), celpy 0.5.0's compiled runner and its
interpreted runner (both over ``json_to_cel``-converted values, as the engine called them), and the same mapping
written as a plain Python function. Expressions: a directory-account map of five fields (the ``map_*`` figures; it
avoids ``has()``, which celpy's compiled runner cannot evaluate: shown as ``nan``), the GitHub repository mapping of
``definitions.github_app`` (printed per line), and the GitHub filter ``action != "deleted"`` (the ``filter_*``
figures). The last line is one JSON object.
"""

from __future__ import annotations

import json
import logging
import sys
import timeit
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

import celpy  # noqa: E402
from celpy.adapter import json_to_cel  # noqa: E402
from celpy.celparser import CELParser  # noqa: E402

from definitions.github_app.mappings import REPOSITORY  # noqa: E402
from engine.cel import compile_expression  # noqa: E402

ACCOUNT_MAP = """
{
  "source_identifier": payload.id,
  "email": payload.primaryEmail,
  "display_name": payload.name.fullName,
  "active": !payload.suspended,
  "org_unit": payload.orgUnitPath
}
"""

USER = {
    "kind": "admin#directory#user",
    "id": "104113232312390723981",
    "primaryEmail": "ada@example.com",
    "name": {"givenName": "Ada", "familyName": "Lovelace", "fullName": "Ada Lovelace"},
    "isAdmin": False,
    "suspended": False,
    "orgUnitPath": "/",
    "lastLoginTime": "2024-05-01T10:00:00.000Z",
    "emails": [{"address": "ada@example.com", "primary": True}],
}

REPO = {
    "id": 1296269,
    "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5",
    "name": "Hello-World",
    "full_name": "octocat/Hello-World",
    "private": False,
    "owner": {"login": "octocat", "id": 1, "type": "User"},
    "html_url": "https://github.com/octocat/Hello-World",
    "description": "This your first repo!",
    "fork": False,
    "visibility": "public",
    "archived": False,
    "updated_at": "2011-01-26T19:14:43Z",
    "topics": ["octocat", "atom"],
}


def account_python(a: dict[str, Any]) -> dict[str, Any]:
    p = a["payload"]
    return {
        "source_identifier": p["id"],
        "email": p["primaryEmail"],
        "display_name": p["name"]["fullName"],
        "active": not p["suspended"],
        "org_unit": p["orgUnitPath"],
    }


def repository_python(a: dict[str, Any]) -> dict[str, Any]:
    p = a["payload"]
    return {
        "source_identifier": p["node_id"],
        "name": p["full_name"],
        "asset_type": "repository",
        "description": p.get("description", None),
        "url": p["html_url"],
        "owner": p["owner"]["login"],
        "visibility": p["visibility"] if "visibility" in p else ("private" if p["private"] else "public"),
        "archived": p.get("archived", None),
        "source_updated_at": p.get("updated_at", None),
    }


def filter_python(a: dict[str, Any]) -> bool:
    return a["action"] != "deleted"


def _activation(payload: dict[str, Any]) -> dict[str, Any]:
    return {"envelope": {}, "variant": "default", "resource": "x", "action": "created", "payload": payload}


def _per_call_us(fn: Any, budget_s: float = 0.4) -> float:
    number = 1
    while True:
        elapsed = timeit.timeit(fn, number=number)
        if elapsed > budget_s / 5:
            break
        number *= 4
    best = min(timeit.repeat(fn, number=number, repeat=5))
    return best / number * 1e6


def _celpy(text: str, runner: type) -> Any:
    """A celpy program for ``runner``. celpy keeps one parser per process, built with the first environment's tree
    class; the compiled runner needs its own, so build one for it and put the engine's parser back afterwards."""
    saved = CELParser.CEL_PARSER
    CELParser.CEL_PARSER = None
    try:
        environment = celpy.Environment(runner_class=runner)
        return environment.program(environment.compile(text))
    finally:
        CELParser.CEL_PARSER = saved


def _or_nan(runner: Any, activation: dict[str, Any], budget_s: float = 0.4) -> float:
    """Per-call µs of a celpy runner, NaN when it cannot evaluate the expression (celpy 0.5.0's compiled runner fails
    on ``has(...) ? … : …``: its transpiled ternary gets a Python ``bool``)."""
    convert = lambda: {k: json_to_cel(v) for k, v in activation.items()}  # noqa: E731
    try:
        runner.evaluate(convert())
    except celpy.CELEvalError:
        return float("nan")
    return _per_call_us(lambda: runner.evaluate(convert()), budget_s)


def measure(text: str, payload: dict[str, Any], python: Any) -> dict[str, float]:
    activation = _activation(payload)
    fast = compile_expression(text, backend="fast")
    compiled = _celpy(text, celpy.CompiledRunner)
    interpreted = _celpy(text, celpy.InterpretedRunner)
    expected = python(activation)
    assert fast.evaluate(activation) == expected, (fast.evaluate(activation), expected)
    return {
        "fast": _per_call_us(lambda: fast.evaluate(activation)),
        "celpy_compiled": _or_nan(compiled, activation),
        "celpy_interpreted": _or_nan(interpreted, activation, budget_s=0.8),
        "python": _per_call_us(lambda: python(activation)),
    }


def main() -> None:
    logging.getLogger("celpy").setLevel(logging.CRITICAL)
    rows = {
        "map (directory account, 5 fields)": measure(ACCOUNT_MAP, USER, account_python),
        "map (GitHub repository, 9 fields)": measure(REPOSITORY.map, REPO, repository_python),
        'filter (GitHub: action != "deleted")': measure(REPOSITORY.filter, REPO, filter_python),
    }
    print(f"{'expression':40} {'fast':>9} {'celpy-c':>9} {'celpy-i':>9} {'python':>9}  fast/python  celpy-c/fast")
    for name, r in rows.items():
        print(
            f"{name:40} {r['fast']:9.2f} {r['celpy_compiled']:9.2f} {r['celpy_interpreted']:9.2f} {r['python']:9.2f}"
            f"  {r['fast'] / r['python']:10.1f}x  {r['celpy_compiled'] / r['fast']:11.1f}x"
        )
    account, github_filter = rows["map (directory account, 5 fields)"], rows['filter (GitHub: action != "deleted")']
    result = {
        "map_fast_us": round(account["fast"], 3),
        "map_celpy_compiled_us": round(account["celpy_compiled"], 3),
        "map_celpy_interpreted_us": round(account["celpy_interpreted"], 3),
        "map_python_us": round(account["python"], 3),
        "filter_fast_us": round(github_filter["fast"], 3),
        "filter_celpy_compiled_us": round(github_filter["celpy_compiled"], 3),
        "filter_python_us": round(github_filter["python"], 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
