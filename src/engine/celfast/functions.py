"""Standard functions and the registry of custom functions offered to mappings.

A call ``f(x, y)`` and a method call ``x.f(y)`` both resolve to ``f`` with ``x`` first, as in celpy. Functions take
and return values of the fast value model (``engine.celfast.values``). The hot ones (``size``, the string predicates,
``string(int)``) are written out; the conversions' slow paths and the timestamp/duration accessors call celpy's own
implementation, the semantic reference, on converted values.

Custom functions: ``register_function(name, impl)`` before expressions are compiled. ``impl`` takes and returns plain
JSON-shaped Python values; an exception it raises (``ValueError``, ``TypeError``…) becomes a CEL error value. Both back
ends see the registered functions (``celpy_functions()`` adapts them for celpy).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from celpy import celtypes, evaluation

from engine.celfast.errors import EvalError
from engine.celfast.regex import PatternError, Regexp, dynamic_pattern, search
from engine.celfast.values import TYPES, Uint, from_celpy, no_overload, to_celpy, to_plain, type_of

Function = Callable[..., Any]

_ERRORS = (TypeError, ValueError, ArithmeticError, KeyError, IndexError, AttributeError)


def _via_celpy(name: str, reference: Callable[..., Any]) -> Function:
    def call(*args: Any) -> Any:
        try:
            result = reference(*(to_celpy(a) for a in args))
        except _ERRORS as exc:
            raise EvalError(f"{name}: {type(exc).__name__}") from None
        if isinstance(result, evaluation.CELEvalError):
            raise EvalError(f"{name}: {result.args[0] if result.args else 'error'}")
        return from_celpy(result)

    call.__name__ = name
    return call


def size(value: Any) -> int:
    t = type(value)
    if t is str or t is list or t is dict or t is bytes or t is tuple:
        return len(value)
    raise no_overload("size", value)


def _strings(name: str, a: Any, b: Any) -> None:
    if type(a) is not str or type(b) is not str:
        raise no_overload(name, a, b)


def contains(a: Any, b: Any) -> bool:
    _strings("contains", a, b)
    return b in a


def starts_with(a: Any, b: Any) -> bool:
    _strings("startsWith", a, b)
    return a.startswith(b)


def ends_with(a: Any, b: Any) -> bool:
    _strings("endsWith", a, b)
    return a.endswith(b)


def matches(a: Any, b: Any) -> bool:
    """``a.matches(b)`` with RE2 (``engine.celfast.regex``). The compiler binds a literal pattern at compile time and
    charges the budget; this is the general path for a pattern computed at run time."""
    _strings("matches", a, b)
    try:
        regexp = dynamic_pattern(b)
    except PatternError:
        # the pattern may be payload data: the error names the failure, not the pattern
        raise EvalError("matches: invalid regular expression (RE2 refuses it)") from None
    return search(regexp, a)


_int_reference = _via_celpy("int", celtypes.IntType)
_uint_reference = _via_celpy("uint", celtypes.UintType)
_double_reference = _via_celpy("double", celtypes.DoubleType)
_string_reference = _via_celpy("string", celtypes.StringType)


def to_int(value: Any) -> int:
    if type(value) is int:
        return value
    return _int_reference(value)


def to_uint(value: Any) -> Uint:
    if type(value) is Uint:
        return value
    return _uint_reference(value)


def to_double(value: Any) -> float:
    if type(value) is float:
        return value
    if type(value) is int:
        return float(value)
    return _double_reference(value)


def to_string(value: Any) -> str:
    t = type(value)
    if t is str:
        return value
    if t is int or t is Uint:
        return str(int(value))
    if isinstance(value, list | tuple | dict):  # celpy prints its own repr; CEL has no such overload
        raise no_overload("string", value)
    return _string_reference(value)


_timestamp_reference = _via_celpy("timestamp", celtypes.TimestampType)


def timestamp(value: Any) -> Any:
    if type(value) is int:  # seconds since the epoch (the CEL spec; celpy 0.5.0 refuses it)
        try:
            return celtypes.TimestampType(datetime.datetime.fromtimestamp(value, tz=datetime.UTC))
        except (OverflowError, ValueError, OSError):
            raise EvalError("timestamp: out of range") from None
    return _timestamp_reference(value)


def dyn(value: Any) -> Any:
    return value


def cel_type(value: Any) -> Any:
    return type_of(value)


STANDARD: dict[str, Function] = {
    "size": size,
    "contains": contains,
    "startsWith": starts_with,
    "endsWith": ends_with,
    "matches": matches,
    "int": to_int,
    "uint": to_uint,
    "double": to_double,
    "string": to_string,
    "bytes": _via_celpy("bytes", celtypes.BytesType),
    "bool": _via_celpy("bool", celtypes.BoolType),
    "dyn": dyn,
    "type": cel_type,
    "timestamp": timestamp,
    "duration": _via_celpy("duration", celtypes.DurationType),
    **{
        name: _via_celpy(name, getattr(evaluation, f"function_{name}"))
        for name in (
            "getDate",
            "getDayOfMonth",
            "getDayOfWeek",
            "getDayOfYear",
            "getFullYear",
            "getMonth",
            "getHours",
            "getMilliseconds",
            "getMinutes",
            "getSeconds",
        )
    },
}

#: Functions celpy 0.5.0 does not offer; the fast back end has them because the CEL spec does.
SPEC_ONLY = frozenset({"dyn"})

_CUSTOM: dict[str, Function] = {}


def register_function(name: str, impl: Callable[..., Any]) -> None:
    """Offer ``impl`` to CEL expressions as ``name(...)`` and ``x.name(...)`` (plain values in and out)."""
    if not (name.isascii() and name.isidentifier()):  # [A-Za-z_][A-Za-z0-9_]*, without a regex
        raise ValueError(f"not a CEL identifier: {name!r}")
    if name in STANDARD or name in TYPES or name in _MACROS:
        raise ValueError(f"{name!r} is a standard CEL function")
    _CUSTOM[name] = impl


def unregister_function(name: str) -> None:
    _CUSTOM.pop(name, None)


_MACROS = frozenset({"has", "all", "exists", "exists_one", "map", "filter"})


def _custom_call(name: str, impl: Callable[..., Any]) -> Function:
    def call(*args: Any) -> Any:
        try:
            return impl(*(to_plain(a) for a in args))
        except _ERRORS as exc:
            raise EvalError(f"{name}: {type(exc).__name__}") from None

    return call


def resolve(name: str) -> Function | None:
    """The function a call to ``name`` runs (custom functions are bound when the expression is compiled)."""
    if name in STANDARD:
        return STANDARD[name]
    impl = _CUSTOM.get(name)
    return _custom_call(name, impl) if impl is not None else None


def celpy_functions() -> dict[str, Callable[..., Any]]:
    """The custom functions adapted for celpy's runners (celpy values in and out)."""

    def adapt(name: str, impl: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            try:
                return to_celpy(impl(*(to_plain(from_celpy(a)) for a in args)))
            except _ERRORS as exc:
                return evaluation.CELEvalError(f"{name}: {type(exc).__name__}", type(exc), ())

        return call

    return {name: adapt(name, impl) for name, impl in _CUSTOM.items()}


def celpy_matches(literals: dict[str, Regexp]) -> Callable[..., Any]:
    """``matches`` for celpy's runner, replacing celpy's own binding so both back ends run the same RE2 (with its
    memory cap and cache). ``literals`` are the expression's literal patterns, compiled when it was compiled."""

    def matches_(text: Any, pattern: Any) -> Any:
        if not isinstance(text, celtypes.StringType) or not isinstance(pattern, celtypes.StringType):
            return evaluation.CELEvalError("no such overload: matches", TypeError, ())
        regexp = literals.get(str(pattern))
        if regexp is None:
            try:
                regexp = dynamic_pattern(str(pattern))
            except PatternError:
                return evaluation.CELEvalError("matches: invalid regular expression (RE2 refuses it)", ValueError, ())
        try:
            return celtypes.BoolType(search(regexp, str(text)))
        except EvalError as exc:
            return evaluation.CELEvalError(exc.message, ValueError, ())

    return matches_
