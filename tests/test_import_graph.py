"""The import graph of ``src/``: no cycle, the engine never imports a definition, definitions use the public face,
and only the queue package imports Dramatiq.

Every import counts, at module level, inside functions and under ``TYPE_CHECKING`` alike: a function-level import
that holds a cycle together is still a cycle a reader has to follow. The graph is read with ``ast``; nothing is
imported.

The one engine module allowed to import a definition is the catalog, which imports the built-in package to list it.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

#: Engine modules that import a definition: only the catalog, which imports the built-in package to list it and
#: the data-definition substrate to load the deployment's definition files (and describe their format).
ENGINE_INTO_DEFINITIONS: set[tuple[str, str]] = {
    ("engine.catalog.loading", "definitions"),
    ("engine.catalog.loading", "definitions.custom_oauth2.loader"),
    ("engine.catalog.loading", "definitions.custom_oauth2.schema"),
}
#: What a definition may import of the engine: its public face.
DEFINITION_MAY_IMPORT = ("engine", "engine.kit")


def modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imported_names(path: Path) -> Iterator[str]:
    """Every name an import statement in ``path`` brings in, as a dotted path (``from a import b`` yields ``a.b``:
    the module ``a.b`` if there is one, else a name in ``a``)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def graph() -> dict[str, set[str]]:
    known = modules()
    edges: dict[str, set[str]] = {}
    for name, path in known.items():
        targets = set()
        for imported in imported_names(path):
            # ``from engine import egress`` names the module engine.kit.egress; ``from engine import Webhook`` the
            # package.
            target = imported
            while target and target not in known:
                target = target.rpartition(".")[0]
            # A module's own packages are initialised before it whatever it imports: no edge anyone follows.
            if target and target != name and not name.startswith(target + "."):
                targets.add(target)
        edges[name] = targets
    return edges


def cycles(edges: dict[str, set[str]]) -> set[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[frozenset[str]] = set()
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.add(frozenset(component))
    return found


def test_the_cycle_finder_finds_cycles() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert cycles(edges) == {frozenset({"a", "b", "c"})}


def test_no_import_cycle() -> None:
    assert cycles(graph()) == set()


def test_the_engine_does_not_import_definitions() -> None:
    found = {(m, t) for m, targets in graph().items() if m.startswith("engine") for t in targets
             if t == "definitions" or t.startswith("definitions.")}
    assert found - ENGINE_INTO_DEFINITIONS == set()
    assert ENGINE_INTO_DEFINITIONS - found == set(), "fixed: delete it from ENGINE_INTO_DEFINITIONS"


def test_definitions_import_only_the_public_face_of_the_engine() -> None:
    found = {(m, t) for m, targets in graph().items() if m.startswith("definitions") for t in targets
             if t.startswith("engine.") and not t.startswith(DEFINITION_MAY_IMPORT[1] + ".")}
    assert found == set(), "a definition imports an engine internal"


def test_only_the_queue_imports_dramatiq() -> None:
    importers = {name for name, path in modules().items() for imported in imported_names(path)
                 if imported == "dramatiq" or imported.startswith("dramatiq.")}
    assert importers and all(name.startswith("engine.queue") for name in importers), importers


#: What the host app's client may import besides itself and the standard library: it ships without the engine.
CLIENT_MAY_IMPORT = {"httpx", "pydantic", "tether_client", "__future__"}


def test_the_client_imports_only_httpx_pydantic_and_the_standard_library() -> None:
    client = {name: path for name, path in modules().items() if name.split(".")[0] == "tether_client"}
    assert "tether_client.client" in client and "tether_client.async_client" in client
    outside = {
        (name, imported)
        for name, path in client.items()
        for imported in imported_names(path)
        if imported.split(".")[0] not in CLIENT_MAY_IMPORT | set(sys.stdlib_module_names)
    }
    assert outside == set(), f"tether_client must not import these: {sorted(outside)}"


def test_the_client_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import json\nfrom engine.errors import TetherError\nimport sqlmodel\n")
    found = {n.split(".")[0] for n in imported_names(sample)} - CLIENT_MAY_IMPORT - set(sys.stdlib_module_names)
    assert found == {"engine", "sqlmodel"}
