"""The small template form of stream requests: ``{input.NAME}``, ``{config.NAME}`` and ``{incremental}``.

Why not ``str.format`` or a template engine: a request value comes from a data file, so it must not reach
attributes or run code (``str.format`` reads ``{0.__class__}``), and the only thing it ever needs is a value by
name. The scan is one pass over the text; ``{{`` and ``}}`` stand for literal braces.

A placeholder whose value is missing this run (no user input field of that name set, no incremental value yet)
makes the whole value missing (``MISSING``): the caller leaves that parameter, header or body field out.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

from pydantic import SecretStr

#: The roots a placeholder may start with.
ROOTS: Final = frozenset({"input", "config", "incremental"})


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


def _scan(text: str) -> Iterator[tuple[str, str]]:
    """``("text", literal)`` and ``("ref", name)`` pieces of ``text``; an unclosed brace is an error."""
    i, n, literal = 0, len(text), []
    while i < n:
        char = text[i]
        if char in "{}" and text.startswith(char * 2, i):
            literal.append(char)
            i += 2
            continue
        if char == "}":
            raise ValueError("a lone } in a template (write }} for a brace)")
        if char == "{":
            end = text.find("}", i + 1)
            if end < 0:
                raise ValueError("an unclosed { in a template (write {{ for a brace)")
            if literal:
                yield "text", "".join(literal)
                literal = []
            yield "ref", text[i + 1 : end].strip()
            i = end + 1
            continue
        literal.append(char)
        i += 1
    if literal:
        yield "text", "".join(literal)


def placeholders(text: str) -> list[tuple[str, str]]:
    """The ``(root, name)`` of each placeholder (``{input.team}`` → ``("input", "team")``)."""
    found = []
    for kind, value in _scan(text):
        if kind == "ref":
            root, _, name = value.partition(".")
            found.append((root, name))
    return found


class Values:
    """What placeholders read in one run: the user input, the operator config and the incremental value."""

    def __init__(self, *, user_input: Any = None, operator_config: Any = None, incremental: Any = None) -> None:
        self._sources = {"input": user_input, "config": operator_config}
        self.incremental = incremental

    def get(self, root: str, name: str) -> Any:
        if root == "incremental":
            return MISSING if self.incremental is None else self.incremental
        source = self._sources.get(root)
        if source is None:
            return MISSING
        value = source.get(name) if isinstance(source, Mapping) else getattr(source, name, None)
        if isinstance(value, SecretStr):
            # A secret in a URL or header ends up in provider logs and proxies: credentials travel through the
            # client's auth, never through a template.
            raise ValueError(f"{{{root}.{name}}} is a secret and cannot be used in a stream request")
        return MISSING if value is None else value

    def fill(self, text: str, *, quote: Any = None) -> Any:
        """``text`` with its placeholders filled (``quote`` applied to each value, for path segments), or
        ``MISSING``. A text that is exactly one placeholder gives the value itself (its JSON type kept)."""
        pieces = list(_scan(text))
        if len(pieces) == 1 and pieces[0][0] == "ref" and quote is None:
            root, _, name = pieces[0][1].partition(".")
            return self.get(root, name)
        out = []
        for kind, value in pieces:
            if kind == "text":
                out.append(value)
                continue
            root, _, name = value.partition(".")
            got = self.get(root, name)
            if got is MISSING:
                return MISSING
            text_value = _text(got)
            out.append(quote(text_value) if quote is not None else text_value)
        return "".join(out)

    def fill_json(self, value: Any) -> Any:
        """A JSON body with every string filled; a field whose value is missing is left out."""
        if isinstance(value, str):
            return self.fill(value)
        if isinstance(value, dict):
            filled = {key: self.fill_json(item) for key, item in value.items()}
            return {key: item for key, item in filled.items() if item is not MISSING}
        if isinstance(value, list):
            return [item for item in (self.fill_json(i) for i in value) if item is not MISSING]
        return value


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
