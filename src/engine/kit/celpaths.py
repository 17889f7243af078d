"""CEL text for a mapping's optional payload paths: present, optional, first of several, true.

Providers leave optional properties out *or* send them as ``null`` (often both, across API versions), and ``has()``
alone is true for a ``null``. These write the guard once, in the one spelling both CEL back ends evaluate alike:
a type test, since the reference back end (celpy) has no ``!=`` between a map or a list and ``null``. Each takes
a dotted path under ``payload`` and returns CEL source to put inside a mapping's ``map``.
"""

from __future__ import annotations


def present(path: str) -> str:
    """``payload.<path>`` is there and not null."""
    return f"(has(payload.{path}) && type(payload.{path}) != null_type)"


def optional(path: str) -> str:
    """``payload.<path>``, or null when it is absent or null."""
    return f"({present(path)} ? payload.{path} : null)"


def first(*paths: str) -> str:
    """The first of ``payload.<path>`` that is present and not null, else null (field names across API versions)."""
    expression = "null"
    for path in reversed(paths):
        expression = f"({present(path)} ? payload.{path} : {expression})"
    return expression


def text(*paths: str) -> str:
    """The first of ``payload.<path>`` that is a non-empty string, else null. Proto3 JSON (Google's APIs) sends an
    unset string as ``""`` as often as it leaves it out, and an empty link or name is no value to land."""
    expression = "null"
    for path in reversed(paths):
        usable = f'({present(path)} && type(payload.{path}) == string && payload.{path} != "")'
        expression = f"({usable} ? payload.{path} : {expression})"
    return expression


def is_true(path: str) -> str:
    """``payload.<path>`` is the boolean ``true`` (absent, null and false are not)."""
    return f"(has(payload.{path}) && payload.{path} == true)"


__all__ = ["first", "is_true", "optional", "present", "text"]
