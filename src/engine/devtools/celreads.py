"""Which payload paths a CEL mapping reads, read from celpy's parse tree (nothing is evaluated).

A path is a tuple of segments under ``payload`` (``envelope.payload`` is the same root): field names, and ``[]``
for "an element of this list" (``payload.tags[0].id``, and ``x.name`` inside ``payload.tags.map(x, x.name)``, are
both ``tags[].id``). Only the longest path of a chain is kept: reading ``payload.a.b`` reads ``a`` too. A key that
is not a literal (``payload[k]``) ends the path at its target. ``has(payload.a)`` counts as a read: a guard on a
field name that never arrives is exactly what a coverage report should show.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import lark

from engine.cel import compile_expression

Path = tuple[str, ...]
#: The segment for "an element of this list".
ITEM = "[]"
#: Macros whose first argument names each element of their target.
_MACROS = frozenset({"map", "filter", "all", "exists", "exists_one"})
_PRECEDENCE = frozenset(
    {"expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication", "unary", "member", "primary"}
)


def dotted(path: Path) -> str:
    """``("tags", "[]", "id")`` → ``tags[].id``; the whole payload is ``payload``."""
    text = ""
    for segment in path:
        text += segment if segment == ITEM else (f".{segment}" if text else segment)
    return text or "payload"


@dataclass
class Reads:
    """The paths one expression reads: ``fields`` per top-level key of a map literal, ``other`` outside those."""

    fields: dict[str, set[Path]] = field(default_factory=dict)
    other: set[Path] = field(default_factory=set)
    #: Whether the expression is a map literal with literal keys (else ``fields`` is empty).
    literal: bool = False

    def all(self) -> set[Path]:
        found = set(self.other)
        for paths in self.fields.values():
            found |= paths
        return found


def reads(text: str) -> Reads:
    """The payload paths ``text`` reads (``text`` must compile: ``CelError`` otherwise)."""
    if not text.strip():
        return Reads()
    tree = compile_expression(text)._ast
    result = Reads()
    top = _unwrap(tree)
    if isinstance(top, lark.Tree) and top.data == "map_lit":
        inits = top.children[0] if top.children else None
        pairs = list(zip(inits.children[0::2], inits.children[1::2], strict=True)) if inits is not None else []
        keys = [_literal_string(k) for k, _ in pairs]
        if all(k is not None for k in keys):
            result.literal = True
            for key, (_, value) in zip(keys, pairs, strict=True):
                assert key is not None
                found: set[Path] = set()
                _walk(value, {}, found)
                result.fields[key] = _maximal(found)
            return result
    found = set()
    _walk(tree, {}, found)
    result.other = _maximal(found)
    return result


def _maximal(paths: set[Path]) -> set[Path]:
    """Drop paths that are a prefix of another read path (``a`` when ``a.b`` is read)."""
    return {p for p in paths if not any(len(q) > len(p) and q[: len(p)] == p for q in paths)}


def _unwrap(node: Any) -> Any:
    while isinstance(node, lark.Tree) and node.data in _PRECEDENCE and len(node.children) == 1:
        node = node.children[0]
    return node


def _children(node: lark.Tree) -> list[Any]:
    return [c for c in node.children if c is not None]


def _literal_string(node: Any) -> str | None:
    literal = _unwrap(node)
    if not (isinstance(literal, lark.Tree) and literal.data == "literal"):
        return None
    token = literal.children[0]
    if not (isinstance(token, lark.Token) and token.type in ("STRING_LIT", "MLSTRING_LIT")):
        return None
    from engine.cel import _string_literal

    return _string_literal(str(token))


def _literal_int(node: Any) -> bool:
    literal = _unwrap(node)
    if not (isinstance(literal, lark.Tree) and literal.data == "literal"):
        return False
    token = literal.children[0]
    return isinstance(token, lark.Token) and token.type in ("INT_LIT", "UINT_LIT")


def _chain(node: Any, scope: dict[str, Path], found: set[Path]) -> Path | None:
    """The payload path ``node`` denotes, or ``None`` when it is not one (walking what it holds meanwhile)."""
    node = _unwrap(node)
    if not isinstance(node, lark.Tree):
        return None
    if node.data in ("ident", "dot_ident"):
        name = str(_children(node)[0])
        if name == "payload":
            return ()
        return scope.get(name)
    if node.data == "member_dot":
        target, name = _children(node)
        if _is_envelope(target) and str(name) == "payload":
            return ()
        base = _chain(target, scope, found)
        if base is None:
            return None
        return (*base, str(name))
    if node.data == "member_index":
        target, key = _children(node)
        base = _chain(target, scope, found)
        if base is None:
            return None
        literal = _literal_string(key)
        if literal is not None:
            return (*base, literal)
        if _literal_int(key):
            return (*base, ITEM)
        found.add(base)  # a computed key: the target is read, and what the key reads
        _walk(key, scope, found)
        return None
    return None


def _is_envelope(node: Any) -> bool:
    node = _unwrap(node)
    return isinstance(node, lark.Tree) and node.data == "ident" and str(_children(node)[0]) == "envelope"


def _walk(node: Any, scope: dict[str, Path], found: set[Path]) -> None:
    node = _unwrap(node)
    if not isinstance(node, lark.Tree):
        return
    if node.data in ("ident", "member_dot", "member_index", "dot_ident"):
        if node.data == "ident" and str(_children(node)[0]) == "envelope":
            return  # envelope alone (its other keys are not the payload)
        path = _chain(node, scope, found)
        if path is not None:
            found.add(path)
            return
        for child in _children(node):
            _walk(child, scope, found)
        return
    if node.data == "member_dot_arg":
        children = _children(node)
        target, name = children[0], str(children[1])
        args = _children(children[2]) if len(children) > 2 else []
        if name in _MACROS and args:
            base = _chain(target, scope, found)
            variable = _unwrap(args[0])
            if base is not None and isinstance(variable, lark.Tree) and variable.data == "ident":
                found.add(base)
                inner = {**scope, str(_children(variable)[0]): (*base, ITEM)}
                for arg in args[1:]:
                    _walk(arg, inner, found)
                return
        _walk(target, scope, found)
        for arg in args:
            _walk(arg, scope, found)
        return
    for child in _children(node):
        if isinstance(child, lark.Tree):
            _walk(child, scope, found)
