"""RE2 for CEL's ``matches``: linear time in the input, bounded memory, refusals named at compile time.

CEL specifies ``matches`` with RE2 syntax. Python's backtracking ``re`` doubles its work per character on
``"aaaa…!".matches("^(a+)+$")`` and holds the GIL of a worker shared by every tenant, so both back ends run RE2
(``google-re2``): a pattern it cannot run in linear time (backreference, lookaround), invalid syntax, or one whose
compiled program would need more than ``MAX_MEM`` is refused. A literal pattern is compiled once when its expression
is compiled (``PatternError`` there becomes the caller's ``CelError``); a pattern computed at run time goes through a
small LRU cache (refusals included, so a refused pattern in a loop is not recompiled per item).

The cost charged to the evaluation budget is ``match_cost(text, pattern)``: one unit per character of input and of
pattern, like a concatenation's one unit per character built.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2

from engine.celfast.errors import EvalError

#: The memory RE2 may use for one compiled pattern (its program and DFA cache). A pattern over it is refused at
#: compile time (``\pL{1000}`` is); matching stays linear because RE2 falls back to its NFA when the DFA cache fills.
MAX_MEM = 2 * 1024 * 1024

#: Dynamic patterns kept compiled (and dynamic refusals remembered).
CACHE_SIZE = 128

_OPTIONS = re2.Options()
_OPTIONS.max_mem = MAX_MEM
_OPTIONS.log_errors = False  # RE2 logs the refused pattern to stderr otherwise; it may be payload data

Regexp = Any  # re2._Regexp (private in google-re2)


class PatternError(ValueError):
    """RE2 refuses the pattern; the message is RE2's reason (it quotes part of the pattern)."""

    def __init__(self, pattern: str, reason: str) -> None:
        super().__init__(reason)
        self.pattern = pattern
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


def compile_pattern(pattern: str) -> Regexp:
    """Compile with RE2 under ``MAX_MEM``; raises ``PatternError`` naming RE2's reason."""
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        raise PatternError(pattern, _reason(exc)) from None
    except UnicodeEncodeError:  # RE2 reads UTF-8; a lone surrogate is not encodable
        raise PatternError(pattern, "the pattern is not valid Unicode text") from None


@lru_cache(maxsize=CACHE_SIZE)
def _cached(pattern: str) -> Regexp | PatternError:
    try:
        return compile_pattern(pattern)
    except PatternError as exc:
        return exc


def dynamic_pattern(pattern: str) -> Regexp:
    """A pattern known only at run time, through the LRU cache; raises ``PatternError`` when RE2 refuses it."""
    found = _cached(pattern)
    if isinstance(found, PatternError):
        raise found
    return found


def search(regexp: Regexp, text: str) -> bool:
    """CEL ``matches``: whether the pattern matches any substring of ``text`` (RE2 semantics, unanchored).

    Raises ``EvalError`` for a string RE2 cannot read (a lone surrogate, which JSON can carry)."""
    try:
        return regexp.search(text) is not None
    except UnicodeEncodeError:
        raise EvalError("matches: the string is not valid Unicode text") from None


def match_cost(text: str, pattern: str) -> int:
    """Budget units for one ``matches`` call: proportional to input plus pattern length (at least 1)."""
    return 1 + len(text) + len(pattern)


def _reason(error: Exception) -> str:
    reason = error.args[0] if error.args else "invalid regular expression"
    if isinstance(reason, bytes):
        reason = reason.decode("utf-8", "replace")
    return str(reason)
