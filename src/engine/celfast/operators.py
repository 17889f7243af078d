"""Arithmetic, ``in`` and negation over the value model, with CEL's overflow and overload errors.

Each operator has a fast path for the common case (both operands ``int``, both ``str``…) and falls back to the
general function, which raises ``no such overload`` for mixed kinds (CEL has no implicit int/double arithmetic).
"""

from __future__ import annotations

import datetime
import math
from typing import Any

from celpy import celtypes

from engine.celfast.errors import EvalError
from engine.celfast.values import INT64_MAX, INT64_MIN, UINT64_MAX, Uint, check_uint, contains_key, equal, no_overload


def _temporal(value: Any) -> Any:
    """Wrap plain ``datetime``/``timedelta`` in celpy's types (their arithmetic applies CEL's range checks)."""
    if isinstance(value, datetime.datetime) and not isinstance(value, celtypes.TimestampType):
        return celtypes.TimestampType(value)
    if isinstance(value, datetime.timedelta) and not isinstance(value, celtypes.DurationType):
        return celtypes.DurationType(value)
    return value


def _temporal_op(op: str, a: Any, b: Any) -> Any:
    a, b = _temporal(a), _temporal(b)
    ts, du = celtypes.TimestampType, celtypes.DurationType
    try:
        if op == "_+_":
            if isinstance(a, ts) and isinstance(b, du):
                return ts(datetime.datetime.__add__(a, b))
            if isinstance(a, du) and isinstance(b, ts):
                return ts(datetime.datetime.__add__(b, a))
            if isinstance(a, du) and isinstance(b, du):
                return du(datetime.timedelta.__add__(a, b))
        elif op == "_-_":
            if isinstance(a, ts) and isinstance(b, du):
                return ts(datetime.datetime.__sub__(a, b))
            if isinstance(a, ts) and isinstance(b, ts):
                return du(datetime.datetime.__sub__(a, b))
            if isinstance(a, du) and isinstance(b, du):
                return du(datetime.timedelta.__sub__(a, b))
    except (OverflowError, ValueError) as exc:
        raise EvalError("return error for overflow") from exc
    raise no_overload(op, a, b)


def add(a: Any, b: Any) -> Any:
    ta = type(a)
    tb = type(b)
    if ta is int and tb is int:
        r = a + b
        if INT64_MIN <= r <= INT64_MAX:
            return r
        raise EvalError("return error for overflow")
    if ta is tb:
        if ta is str or ta is float or ta is bytes:
            return a + b
        if ta is Uint:
            return check_uint(a + b)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return [*a, *b]
    if isinstance(a, datetime.date | datetime.timedelta) and isinstance(b, datetime.date | datetime.timedelta):
        return _temporal_op("_+_", a, b)
    raise no_overload("_+_", a, b)


def sub(a: Any, b: Any) -> Any:
    ta = type(a)
    tb = type(b)
    if ta is int and tb is int:
        r = a - b
        if INT64_MIN <= r <= INT64_MAX:
            return r
        raise EvalError("return error for overflow")
    if ta is tb:
        if ta is float:
            return a - b
        if ta is Uint:
            return check_uint(a - b)
    if isinstance(a, datetime.date | datetime.timedelta) and isinstance(b, datetime.date | datetime.timedelta):
        return _temporal_op("_-_", a, b)
    raise no_overload("_-_", a, b)


def mul(a: Any, b: Any) -> Any:
    ta = type(a)
    tb = type(b)
    if ta is tb:
        if ta is int:
            r = a * b
            if INT64_MIN <= r <= INT64_MAX:
                return r
            raise EvalError("return error for overflow")
        if ta is float:
            return a * b
        if ta is Uint:
            return check_uint(a * b)
    raise no_overload("_*_", a, b)


def _trunc_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def div(a: Any, b: Any) -> Any:
    ta = type(a)
    tb = type(b)
    if ta is tb:
        if ta is int or ta is Uint:
            if b == 0:
                raise EvalError("divide by zero")
            q = _trunc_div(a, b)
            if ta is Uint:
                return Uint(q)
            if q > INT64_MAX:
                raise EvalError("return error for overflow")
            return q
        if ta is float:
            if b == 0.0:
                if a == 0.0 or math.isnan(a):
                    return math.nan
                return math.copysign(math.inf, a) * math.copysign(1.0, b)
            return a / b
    raise no_overload("_/_", a, b)


def mod(a: Any, b: Any) -> Any:
    ta = type(a)
    tb = type(b)
    if ta is tb and (ta is int or ta is Uint):
        if b == 0:
            raise EvalError("modulus by zero")
        r = abs(a) % abs(b)
        r = -r if a < 0 else r
        return Uint(r) if ta is Uint else r
    raise no_overload("_%_", a, b)


def neg(a: Any) -> Any:
    ta = type(a)
    if ta is int:
        if a == INT64_MIN:
            raise EvalError("return error for overflow")
        return -a
    if ta is float:
        return -a
    if isinstance(a, datetime.timedelta) and not isinstance(a, datetime.datetime):
        try:
            return celtypes.DurationType(-a)
        except (OverflowError, ValueError) as exc:
            raise EvalError("return error for overflow") from exc
    raise no_overload("-_", a)


def not_(a: Any) -> bool:
    if a is True:
        return False
    if a is False:
        return True
    raise no_overload("!_", a)


def in_(item: Any, container: Any) -> bool:
    tc = type(container)
    if tc is list or tc is tuple:
        if type(item) is str:
            return any(type(v) is str and v == item for v in container)
        return any(equal(item, v) for v in container)
    if tc is dict:
        return contains_key(container, item)
    if isinstance(container, list | tuple):
        return any(equal(item, v) for v in container)
    if isinstance(container, dict):
        return contains_key(container, item)
    raise no_overload("@in", item, container)


__all__ = ["UINT64_MAX", "add", "div", "in_", "mod", "mul", "neg", "not_", "sub"]
