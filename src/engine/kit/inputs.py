"""Checks of untrusted text that the standard library's own predicates get wrong for our purposes.

``str.isdigit()`` is true for ``'²'`` and ``'①'`` (which ``int()`` then refuses) and ``int()`` accepts Arabic-Indic
digits, underscores and surrounding spaces: numbers in headers and query strings are ASCII digits here, and nothing
else. And the database cannot hold every Python string: PostgreSQL refuses NUL in text, and a lone UTF-16
surrogate (JSON ``"\\ud800"`` decodes to one) cannot be encoded as UTF-8 at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: ``int()`` of more digits than this raises (CPython's conversion limit is 4300); numbers we read are far shorter.
MAX_DIGITS = 18


def ascii_digits(text: str, max_digits: int = MAX_DIGITS) -> bool:
    """Whether ``text`` is 1..``max_digits`` ASCII digits, and nothing else (no sign, space or ``_``)."""
    return 0 < len(text) <= max_digits and text.isascii() and text.isdigit()


def ascii_int(text: str, max_digits: int = MAX_DIGITS) -> int | None:
    """The value of ``text`` if it is ASCII digits only (``ascii_digits``), else ``None``."""
    return int(text) if ascii_digits(text, max_digits) else None


def storable(text: str) -> bool:
    """Whether the database can store ``text``: no NUL and no lone surrogate."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def fits(text: str, max_length: int) -> bool:
    """Whether ``text`` is ``storable`` and at most ``max_length`` characters (a ``VARCHAR(max_length)`` column)."""
    return len(text) <= max_length and storable(text)


def unstorable_string(value: Any) -> bool:
    """Whether any string in a decoded JSON value (keys included) is not ``storable``.

    Iterative, so a 10,000-deep document does not exhaust the interpreter's recursion limit.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not storable(item):
                return True
        elif isinstance(item, Mapping):
            for key, child in item.items():
                if isinstance(key, str) and not storable(key):
                    return True
                stack.append(child)
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False
