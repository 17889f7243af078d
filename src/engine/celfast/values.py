"""The value model: CEL values as plain, JSON-shaped Python values.

=========== ==========================================================================================
CEL type    Python value
=========== ==========================================================================================
null_type   ``None``
bool        ``bool``
int         ``int`` (exactly ``int``; checked against the int64 range after every operation)
uint        ``Uint``, an ``int`` subclass (checked against the uint64 range)
double      ``float``
string      ``str``; bytes: ``bytes``
list        ``list`` (or ``tuple``); map: ``dict``
timestamp   celpy's ``TimestampType`` (a ``datetime``); a plain aware ``datetime`` is accepted too
duration    celpy's ``DurationType`` (a ``timedelta``); a plain ``timedelta`` is accepted too
type        ``CelType``
=========== ==========================================================================================

A JSON payload is already a CEL value in this model (JSON numbers that Python parsed as ``int`` are CEL ints, as
celpy's ``json_to_cel`` makes them), so records are evaluated as they are, without conversion.
"""

from __future__ import annotations

import datetime
from typing import Any

from celpy import celtypes

from engine.celfast.errors import EvalError

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1


class Uint(int):
    """A CEL ``uint``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"{int(self)}u"


class CelType:
    """A CEL type value (what ``type(x)`` returns and what ``int``, ``string``… name)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


TYPES = {
    name: CelType(name)
    for name in (
        "null_type",
        "bool",
        "int",
        "uint",
        "double",
        "string",
        "bytes",
        "list",
        "map",
        "type",
        "google.protobuf.Timestamp",
        "google.protobuf.Duration",
    )
}

_TYPE_OF: dict[type, CelType] = {
    type(None): TYPES["null_type"],
    bool: TYPES["bool"],
    int: TYPES["int"],
    Uint: TYPES["uint"],
    float: TYPES["double"],
    str: TYPES["string"],
    bytes: TYPES["bytes"],
    list: TYPES["list"],
    tuple: TYPES["list"],
    dict: TYPES["map"],
    CelType: TYPES["type"],
}

#: Types whose values compare with Python's ``==`` exactly as CEL does when both operands share the type.
SIMPLE = frozenset({str, int, float, bytes, type(None), Uint})
NUMBERS = frozenset({int, Uint, float})


def type_of(value: Any) -> CelType:
    found = _TYPE_OF.get(type(value))
    if found is not None:
        return found
    if isinstance(value, datetime.datetime):
        return TYPES["google.protobuf.Timestamp"]
    if isinstance(value, datetime.timedelta):
        return TYPES["google.protobuf.Duration"]
    if isinstance(value, dict):
        return TYPES["map"]
    if isinstance(value, list | tuple):
        return TYPES["list"]
    raise EvalError(f"unsupported value type {type(value).__name__}")


def type_name(value: Any) -> str:
    try:
        return type_of(value).name
    except EvalError:
        return type(value).__name__


def check_int(value: int) -> int:
    if INT64_MIN <= value <= INT64_MAX:
        return value
    raise EvalError("return error for overflow")


def check_uint(value: int) -> Uint:
    if 0 <= value <= UINT64_MAX:
        return Uint(value)
    raise EvalError("return error for overflow")


def equal(a: Any, b: Any) -> bool:
    """CEL ``==``: numbers compare by value across int/uint/double; other mixed types are unequal."""
    ta = type(a)
    tb = type(b)
    if ta is tb and ta in SIMPLE:
        return a == b
    if ta in NUMBERS and tb in NUMBERS:
        if ta is float or tb is float:  # CEL compares int and uint with double as doubles
            return float(a) == float(b)
        return a == b
    if ta is bool or tb is bool:
        return ta is tb and a == b
    if isinstance(a, list | tuple):
        if not isinstance(b, list | tuple) or len(a) != len(b):
            return False
        return all(equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        if not isinstance(b, dict) or len(a) != len(b):
            return False
        for key, value in a.items():
            found, other = lookup(b, key)
            if not found or not equal(value, other):
                return False
        return True
    if isinstance(a, datetime.datetime):
        return isinstance(b, datetime.datetime) and a == b
    if isinstance(a, datetime.timedelta):
        return isinstance(b, datetime.timedelta) and a == b
    if ta is CelType:
        return tb is CelType and a.name == b.name
    if ta is tb:
        return bool(a == b)
    return False


def compare(op: str, a: Any, b: Any) -> int:
    """CEL ordering: -1, 0 or 1 (NaN compares as "unordered": 2); raises ``no such overload`` across kinds."""
    ta = type(a)
    tb = type(b)
    ordered = (
        (ta is tb and ta in _ORDERED)
        or (ta in NUMBERS and tb in NUMBERS)
        or (isinstance(a, datetime.datetime) and isinstance(b, datetime.datetime))
        or (
            isinstance(a, datetime.timedelta)
            and isinstance(b, datetime.timedelta)
            and not isinstance(a, datetime.datetime)
        )
    )
    if not ordered:
        raise no_overload(op, a, b)
    if (ta is float) is not (tb is float) and ta in NUMBERS and tb in NUMBERS:
        a, b = float(a), float(b)
    if a < b:
        return -1
    if a > b:
        return 1
    if a == b:
        return 0
    return 2  # NaN: every ordering is false


_ORDERED = frozenset({str, bytes, bool, int, Uint, float})


def lookup(mapping: dict, key: Any) -> tuple[bool, Any]:
    """A map lookup with CEL key equality (``1``, ``1u`` and ``1.0`` are one key; ``true`` is not ``1``)."""
    tk = type(key)
    if tk is str:
        if key in mapping:
            return True, mapping[key]
        return False, None
    if tk is bool or tk in NUMBERS:
        for candidate, value in mapping.items():
            tc = type(candidate)
            if (tk is bool) == (tc is bool) and (tc is bool or tc in NUMBERS) and candidate == key:
                return True, value
        return False, None
    if tk in (type(None), bytes):
        raise EvalError(f"unsupported key type {type_name(key)}")
    return False, None


def contains_key(mapping: dict, key: Any) -> bool:
    return lookup(mapping, key)[0]


def to_plain(value: Any) -> Any:
    """The plain Python value callers get: ``Uint`` becomes ``int``, timestamps aware ``datetime`` in UTC, durations
    ``timedelta`` (as ``engine.cel.to_python`` makes them from celpy values)."""
    t = type(value)
    if t in _PLAIN:
        return value
    if t is Uint:
        return int(value)
    if t is dict:
        for v in value.values():
            if type(v) not in _PLAIN:
                return {to_plain(k): to_plain(v) for k, v in value.items()}
        return value
    if t is list or t is tuple:
        for v in value:
            if type(v) not in _PLAIN:
                return [to_plain(v) for v in value]
        return value if t is list else list(value)
    if isinstance(value, datetime.datetime):
        return datetime.datetime.fromtimestamp(value.timestamp(), tz=datetime.UTC)
    if isinstance(value, datetime.timedelta):
        return datetime.timedelta(seconds=value.total_seconds())
    return value


_PLAIN = frozenset({str, int, float, bool, bytes, type(None)})


def to_celpy(value: Any) -> Any:
    """This model's value as a celpy value (to call celpy's functions, the reference, on the slow paths)."""
    t = type(value)
    if t is bool:
        return celtypes.BoolType(value)
    if t is Uint:
        return celtypes.UintType(int(value))
    if t is int:
        return celtypes.IntType(value)
    if t is float:
        return celtypes.DoubleType(value)
    if t is str:
        return celtypes.StringType(value)
    if t is bytes:
        return celtypes.BytesType(value)
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return celtypes.ListType([to_celpy(v) for v in value])
    if isinstance(value, dict):
        return celtypes.MapType({to_celpy(k): to_celpy(v) for k, v in value.items()})
    if isinstance(value, celtypes.TimestampType | celtypes.DurationType):
        return value
    if isinstance(value, datetime.datetime):
        return celtypes.TimestampType(value)
    if isinstance(value, datetime.timedelta):
        return celtypes.DurationType(value)
    return value


def from_celpy(value: Any) -> Any:
    """A celpy value in this model."""
    if isinstance(value, celtypes.BoolType):
        return bool(value)
    if isinstance(value, celtypes.UintType):
        return Uint(int(value))
    if isinstance(value, celtypes.IntType):
        return int(value)
    if isinstance(value, celtypes.DoubleType):
        return float(value)
    if isinstance(value, celtypes.StringType):
        return str(value)
    if isinstance(value, celtypes.BytesType):
        return bytes(value)
    if isinstance(value, celtypes.ListType):
        return [from_celpy(v) for v in value]
    if isinstance(value, celtypes.MapType):
        return {from_celpy(k): from_celpy(v) for k, v in value.items()}
    return value


def no_overload(operation: str, *operands: object) -> EvalError:
    """``no such overload`` for an operation applied to operands of these CEL types (types, not values)."""
    return EvalError(f"no such overload: {operation}({', '.join(type_name(v) for v in operands)})")
