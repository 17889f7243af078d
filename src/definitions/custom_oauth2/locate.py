"""Where a key is in a definition file: the line of each key path, for error messages.

Why a scanner of our own: ``tomllib`` (and ``json``) give values, not positions, and a position-aware TOML parser
(``tomlkit``) would be one more runtime dependency for one message. The file has already parsed when these run, so
they only need to follow the structure, not to check it: table headers (``[a.b]``, ``[[a]]`` with its item index),
dotted and quoted keys, and strings (so a ``=`` or ``#`` inside one is not read as syntax). A key inside an inline
table or array has no entry of its own: ``line_of`` then answers the line of the nearest key that holds it, which is
the same line for an inline value.

Both scanners are one pass over the text with no backtracking: files are operator-written, but any text must stay
linear.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

KeyPath = tuple[str | int, ...]
_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def line_of(lines: dict[KeyPath, int], path: Sequence[str | int]) -> int | None:
    """The line of ``path``, or of its longest prefix that has one (``None``: not even the first key has)."""
    key = tuple(path)
    while key:
        if key in lines:
            return lines[key]
        key = key[:-1]
    return None


def toml_key_lines(text: str) -> dict[KeyPath, int]:
    """Every key path a TOML document defines, with the 1-based line where it is first written."""
    found: dict[KeyPath, int] = {}
    table: KeyPath = ()
    array_items: dict[KeyPath, int] = {}
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        number, line = index + 1, lines[index].lstrip()
        index += 1
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            is_array = line.startswith("[[")
            keys, _ = _keys(line, 2 if is_array else 1)
            header: KeyPath = _in_items(keys, array_items)
            if is_array:
                array_items[header] = array_items.get(header, -1) + 1
                found.setdefault(header, number)
                header = (*header, array_items[header])
            table = header
            found.setdefault(table, number)
            continue
        keys, rest = _keys(line, 0)
        if not keys:
            continue
        path = (*table, *keys)
        for depth in range(len(table) + 1, len(path) + 1):
            found.setdefault(path[:depth], number)
        # A multi-line string value may hold lines that look like keys: skip to its end.
        value = rest.lstrip()
        for quote in ('"""', "'''"):
            if value.startswith(quote) and value.count(quote) == 1:
                while index < len(lines) and quote not in lines[index]:
                    index += 1
                index += 1
        # A multi-line array or inline table: skip its lines (their keys are found through the line above).
        depth = _bracket_depth(value)
        while depth > 0 and index < len(lines):
            depth += _bracket_depth(lines[index])
            index += 1
    return found


def _in_items(keys: list[str], array_items: dict[KeyPath, int]) -> KeyPath:
    """A header's path with the current item index after each array of tables in it (``[streams.request]`` after
    a second ``[[streams]]`` is ``("streams", 1, "request")``)."""
    path: KeyPath = ()
    for key in keys:
        plain = (*path, key)
        path = (*plain, array_items[plain]) if plain in array_items else plain
    # The header's own array of tables gets its next index from the caller, not the current one.
    return path[:-1] if path and isinstance(path[-1], int) else path


def _keys(line: str, start: int) -> tuple[list[str], str]:
    """The dotted key at ``line[start:]`` (bare or quoted parts) and the text after its ``=`` or ``]``."""
    keys: list[str] = []
    i, n = start, len(line)
    while i < n:
        while i < n and line[i] in " \t":
            i += 1
        if i < n and line[i] in "\"'":
            quote, j = line[i], i + 1
            part = []
            while j < n and line[j] != quote:
                if quote == '"' and line[j] == "\\" and j + 1 < n:
                    part.append(line[j + 1])
                    j += 2
                    continue
                part.append(line[j])
                j += 1
            keys.append("".join(part))
            i = j + 1
        else:
            j = i
            while j < n and line[j] in _BARE:
                j += 1
            if j == i:
                return [], ""
            keys.append(line[i:j])
            i = j
        while i < n and line[i] in " \t":
            i += 1
        if i < n and line[i] == ".":
            i += 1
            continue
        if i < n and line[i] in "=]":
            return keys, line[i + 1 :]
        return [], ""
    return [], ""


def _bracket_depth(text: str) -> int:
    """Opening minus closing brackets and braces outside strings and comments."""
    depth, quote, i = 0, "", 0
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\" and quote == '"':
                i += 1
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "#":
            break
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        i += 1
    return depth


def json_key_lines(text: str) -> dict[KeyPath, int]:
    """Every key path (and array item) of a JSON document, with the 1-based line where it starts."""
    found: dict[KeyPath, int] = {}
    # Each open container: its path, whether it is an object, the next array index, the key just read.
    stack: list[list[object]] = []
    line, i, n = 1, 0, len(text)
    expecting_key = False

    def mark_value() -> None:
        if stack and stack[-1][1] is False:  # an array item starts here
            top = stack[-1]
            path = (*top[0], top[2])  # type: ignore[misc]
            found.setdefault(path, line)

    while i < n:
        char = text[i]
        if char == "\n":
            line += 1
        elif char == '"':
            j, part = i + 1, []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    part.append(text[j : j + 2])
                    j += 2
                    continue
                part.append(text[j])
                j += 1
            if expecting_key and stack and stack[-1][1] is True:
                key = json.loads(f'"{"".join(part)}"')  # the raw text between the quotes, escapes decoded
                stack[-1][3] = key
                found.setdefault((*stack[-1][0], key), line)  # type: ignore[misc]
                expecting_key = False
            else:
                mark_value()
            i = j
        elif char in "{[":
            mark_value()
            parent: KeyPath = ()
            if stack:
                top = stack[-1]
                parent = (*top[0], top[3]) if top[1] else (*top[0], top[2])  # type: ignore[misc]
            stack.append([parent, char == "{", 0, None])
            expecting_key = char == "{"
        elif char in "}]":
            if stack:
                stack.pop()
        elif char == ",":
            if stack:
                if stack[-1][1]:
                    expecting_key = True
                else:
                    stack[-1][2] = int(stack[-1][2]) + 1  # type: ignore[call-overload]
        elif char not in " \t\r:":
            mark_value()  # a number, true, false or null item: mark once, then skip the literal
            while i + 1 < n and text[i + 1] not in ",]} \t\r\n":
                i += 1
        i += 1
    return found
