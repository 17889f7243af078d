"""The compiler: celpy's lark parse tree to nested Python closures.

Every node of the tree becomes one closure ``f(a)`` over the activation dict ``a`` (the caller's variables, the
comprehension variables and the cost budget). The compiler resolves at compile time everything that does not depend
on the record (literals, which function a call runs, map-literal keys, the shape of a field chain such as
``payload.owner.login``) and specialises the common cases, so the run-time work is close to what a hand-written Python
function does. CEL errors are ``EvalError`` exceptions, caught where CEL absorbs them (``&&``, ``||``, ``all``,
``exists``).

With ``qualified=True`` a field chain rooted at an identifier first tries the longest dotted variable name
(``a.b.c``, then ``a.b``, then ``a``), as CEL's qualified-name resolution requires; ``Program`` uses that variant
only for activations that have dotted names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lark
from celpy.evaluation import celbytes, celstr

from engine.celfast import operators as ops
from engine.celfast.budget import charge
from engine.celfast.errors import BudgetExceeded, EvalError
from engine.celfast.functions import resolve
from engine.celfast.regex import PatternError, compile_pattern, dynamic_pattern, match_cost, search
from engine.celfast.values import (
    INT64_MAX,
    INT64_MIN,
    NUMBERS,
    SIMPLE,
    TYPES,
    UINT64_MAX,
    Uint,
    compare,
    equal,
    lookup,
    no_overload,
)

Fn = Callable[[dict], Any]
_MISSING = object()
_PASS_THROUGH = frozenset(
    {"expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication", "unary", "member", "primary"}
)
_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})


def _fail(message: str) -> Fn:
    def fail(a: dict) -> Any:
        raise EvalError(message)

    return fail


def _children(tree: lark.Tree) -> list[Any]:
    return [c for c in tree.children if c is not None]


def _select(value: Any, field: str) -> Any:
    """``value.field``: a map's key (a missing key is an error, not null)."""
    if type(value) is dict or isinstance(value, dict):
        try:
            return value[field]
        except KeyError:
            raise EvalError(f"no such key: '{field}'") from None
    raise EvalError(f"no such overload: field selection on {type(value).__name__}")


def _index(value: Any, key: Any) -> Any:
    tv = type(value)
    if tv is list or tv is tuple or isinstance(value, list | tuple):
        tk = type(key)
        if tk is float and key.is_integer():
            key = int(key)
            tk = int
        if tk is int or tk is Uint:
            if 0 <= key < len(value):
                return value[key]
            raise EvalError("index out of range")
        raise no_overload("_[_]", value, key)
    if tv is dict or isinstance(value, dict):
        found, result = lookup(value, key)
        if found:
            return result
        raise EvalError("no such key")
    raise no_overload("_[_]", value, key)


def _range(value: Any, macro: str) -> Any:
    if type(value) is list or type(value) is tuple:
        return value
    if type(value) is dict:
        return list(value)
    if isinstance(value, list | tuple | dict):
        return list(value)
    raise no_overload(macro, value)


class Compiler:
    def __init__(self, *, qualified: bool = False) -> None:
        self.qualified = qualified
        self._constants: dict[Fn, Any] = {}

    # -- helpers -------------------------------------------------------------------------------------------------

    def _constant(self, value: Any) -> Fn:
        def constant(a: dict) -> Any:
            return value

        self._constants[constant] = value
        return constant

    def _is_constant(self, fn: Fn) -> bool:
        return fn in self._constants

    def compile(self, tree: Any) -> Fn:
        while isinstance(tree, lark.Tree) and tree.data in _PASS_THROUGH and len(_children(tree)) == 1:
            tree = _children(tree)[0]
        if not isinstance(tree, lark.Tree):
            return _fail(f"unsupported syntax: {tree!r}")
        method = getattr(self, f"_{tree.data}", None)
        if method is None:
            return _fail(f"unsupported syntax: {tree.data}")
        return method(tree)

    # -- logic ---------------------------------------------------------------------------------------------------

    def _expr(self, tree: lark.Tree) -> Fn:
        cond, then, otherwise = (self.compile(c) for c in _children(tree))

        def conditional(a: dict) -> Any:
            c = cond(a)
            if c is True:
                return then(a)
            if c is False:
                return otherwise(a)
            raise no_overload("_?_:_", c)

        return conditional

    def _conditionalor(self, tree: lark.Tree) -> Fn:
        left, right = (self.compile(c) for c in _children(tree))
        return self._logic(left, right, True)

    def _conditionaland(self, tree: lark.Tree) -> Fn:
        left, right = (self.compile(c) for c in _children(tree))
        return self._logic(left, right, False)

    @staticmethod
    def _logic(left: Fn, right: Fn, is_or: bool) -> Fn:
        """``||`` (``is_or``) or ``&&``: the deciding value (``true`` for ``||``, ``false`` for ``&&``) on either side
        wins over an error or a non-bool on the other; otherwise an error or non-bool operand is the result."""
        decider = is_or
        name = "_||_" if is_or else "_&&_"

        def logic(a: dict) -> Any:
            try:
                x = left(a)
            except EvalError as exc:
                x = exc
            if x is decider:
                return decider
            try:
                y = right(a)
            except EvalError as exc:
                if type(x) is bool:
                    raise
                y = exc
            if y is decider:
                return decider
            if type(x) is bool and type(y) is bool:
                return not decider
            if isinstance(x, EvalError):
                raise x
            if isinstance(y, EvalError):
                raise y
            raise no_overload(name, x, y)

        return logic

    # -- relations -----------------------------------------------------------------------------------------------

    def _relation(self, tree: lark.Tree) -> Fn:
        op_node, right_tree = _children(tree)
        left = self.compile(_children(op_node)[0])
        right = self.compile(right_tree)
        op = op_node.data
        if op in ("relation_eq", "relation_ne"):
            return self._equality(left, right, op == "relation_ne")
        if op == "relation_in":
            in_ = ops.in_

            def membership(a: dict) -> bool:
                return in_(left(a), right(a))

            return membership
        symbol = {"relation_lt": "_<_", "relation_le": "_<=_", "relation_gt": "_>_", "relation_ge": "_>=_"}[op]
        accept = {"relation_lt": (-1,), "relation_le": (-1, 0), "relation_gt": (1,), "relation_ge": (1, 0)}[op]
        py = {
            "relation_lt": lambda x, y: x < y,
            "relation_le": lambda x, y: x <= y,
            "relation_gt": lambda x, y: x > y,
            "relation_ge": lambda x, y: x >= y,
        }[op]

        def ordering(a: dict) -> bool:
            x = left(a)
            y = right(a)
            tx = type(x)
            if tx is type(y) and (tx is int or tx is str or tx is float):
                return py(x, y)
            return compare(symbol, x, y) in accept

        return ordering

    def _equality(self, left: Fn, right: Fn, negate: bool) -> Fn:
        if self._is_constant(right) and type(self._constants[right]) in (str, int):
            c = self._constants[right]
            tc = type(c)

            if negate:

                def ne_constant(a: dict) -> bool:
                    x = left(a)
                    if type(x) is tc:
                        return x != c
                    return not equal(x, c)

                return ne_constant

            def eq_constant(a: dict) -> bool:
                x = left(a)
                if type(x) is tc:
                    return x == c
                return equal(x, c)

            return eq_constant

        def eq(a: dict) -> bool:
            x = left(a)
            y = right(a)
            tx = type(x)
            if tx is type(y) and tx in SIMPLE:
                return (x != y) if negate else (x == y)
            return equal(x, y) is not negate

        return eq

    # -- arithmetic ----------------------------------------------------------------------------------------------

    def _addition(self, tree: lark.Tree) -> Fn:
        op_node, right_tree = _children(tree)
        left = self.compile(_children(op_node)[0])
        right = self.compile(right_tree)
        if op_node.data == "addition_sub":
            return self._binary(ops.sub, left, right)
        add = ops.add

        def addition(a: dict) -> Any:
            x = left(a)
            y = right(a)
            if type(x) is int and type(y) is int:
                r = x + y
                if INT64_MIN <= r <= INT64_MAX:
                    return r
                raise EvalError("return error for overflow")
            r = add(x, y)
            tr = type(r)
            if tr is str or tr is list or tr is bytes:
                charge(a, len(r))
            return r

        return addition

    def _multiplication(self, tree: lark.Tree) -> Fn:
        op_node, right_tree = _children(tree)
        left = self.compile(_children(op_node)[0])
        right = self.compile(right_tree)
        function = {"multiplication_mul": ops.mul, "multiplication_div": ops.div, "multiplication_mod": ops.mod}
        return self._binary(function[op_node.data], left, right)

    @staticmethod
    def _binary(function: Callable[[Any, Any], Any], left: Fn, right: Fn) -> Fn:
        def binary(a: dict) -> Any:
            return function(left(a), right(a))

        return binary

    def _unary(self, tree: lark.Tree) -> Fn:
        op_node, operand_tree = _children(tree)
        operand = self.compile(operand_tree)
        function = ops.not_ if op_node.data == "unary_not" else ops.neg

        def unary(a: dict) -> Any:
            return function(operand(a))

        return unary

    # -- members -------------------------------------------------------------------------------------------------

    def _member_dot(self, tree: lark.Tree) -> Fn:
        fields: list[str] = []
        node: Any = tree
        while True:
            while isinstance(node, lark.Tree) and node.data in ("member", "primary") and len(_children(node)) == 1:
                node = _children(node)[0]
            if isinstance(node, lark.Tree) and node.data == "member_dot":
                target, name = _children(node)
                fields.append(str(name))
                node = target
                continue
            break
        fields.reverse()
        if isinstance(node, lark.Tree) and node.data in ("ident", "dot_ident"):
            return self._chain(str(_children(node)[0]), fields)
        return self._fields(self.compile(node), fields)

    @staticmethod
    def _fields(target: Fn, fields: list[str]) -> Fn:
        if len(fields) == 1:
            (f1,) = fields

            def field1(a: dict) -> Any:
                v = target(a)
                if type(v) is dict:
                    found = v.get(f1, _MISSING)
                    if found is not _MISSING:
                        return found
                return _select(v, f1)  # the general path, which raises CEL's error for a missing key

            return field1

        def fields_n(a: dict) -> Any:
            v = target(a)
            for f in fields:
                v = v[f] if type(v) is dict and f in v else _select(v, f)
            return v

        return fields_n

    def _chain(self, root: str, fields: list[str]) -> Fn:
        """``root.f1.f2…``: in qualified mode, the longest dotted variable name wins."""
        if self.qualified:
            names = [".".join([root, *fields[:i]]) for i in range(len(fields), -1, -1)]

            def qualified_chain(a: dict) -> Any:
                for depth, name in zip(range(len(fields), -1, -1), names, strict=True):
                    if name in a:
                        v = a[name]
                        for f in fields[depth:]:
                            v = _select(v, f)
                        return v
                return _select(self._ident_fallback(root), fields[0])

            return qualified_chain
        fallback = self._ident_fallback
        if len(fields) == 1:
            (f1,) = fields

            def chain1(a: dict) -> Any:
                try:
                    v = a[root]
                except KeyError:
                    v = fallback(root)
                if type(v) is dict:
                    found = v.get(f1, _MISSING)
                    if found is not _MISSING:
                        return found
                return _select(v, f1)  # the general path, which raises CEL's error for a missing key

            return chain1
        if len(fields) == 2:
            f1, f2 = fields

            def chain2(a: dict) -> Any:
                try:
                    v = a[root]
                except KeyError:
                    v = fallback(root)
                v = v[f1] if type(v) is dict and f1 in v else _select(v, f1)
                if type(v) is dict and f2 in v:
                    return v[f2]
                return _select(v, f2)

            return chain2

        def chain(a: dict) -> Any:
            try:
                v = a[root]
            except KeyError:
                v = fallback(root)
            for f in fields:
                v = v[f] if type(v) is dict and f in v else _select(v, f)
            return v

        return chain

    @staticmethod
    def _ident_fallback(name: str) -> Any:
        if name in TYPES:
            return TYPES[name]
        raise EvalError(f"undeclared reference to '{name}'")

    def _ident(self, tree: lark.Tree) -> Fn:
        name = str(_children(tree)[0])
        fallback = self._ident_fallback

        def ident(a: dict) -> Any:
            try:
                return a[name]
            except KeyError:
                return fallback(name)

        return ident

    _dot_ident = _ident

    def _member_index(self, tree: lark.Tree) -> Fn:
        target_tree, key_tree = _children(tree)
        target = self.compile(target_tree)
        key = self.compile(key_tree)
        if self._is_constant(key) and type(self._constants[key]) is str:
            k = self._constants[key]
            return self._string_index(target, k)

        def index(a: dict) -> Any:
            return _index(target(a), key(a))

        return index

    @staticmethod
    def _string_index(target: Fn, k: str) -> Fn:
        def string_index(a: dict) -> Any:
            v = target(a)
            if type(v) is dict:
                try:
                    return v[k]
                except KeyError:
                    raise EvalError("no such key") from None
            return _index(v, k)

        return string_index

    def _member_object(self, tree: lark.Tree) -> Fn:
        """Only the protobuf wrapper messages (``google.protobuf.Int64Value{value: 1}``): they are their value."""
        children = _children(tree)
        name = _dotted_name(children[0])
        wrapper = _WRAPPERS.get(name.removeprefix("."))
        if wrapper is None:
            return _fail(f"message construction is not supported: {name}")
        default, convert = wrapper
        inits = _children(children[1]) if len(children) > 1 else []
        fields = {str(k): self.compile(v) for k, v in zip(inits[0::2], inits[1::2], strict=True)}
        if set(fields) - {"value"}:
            return _fail(f"no such field in {name}")
        value_fn = fields.get("value")
        if value_fn is None:
            return self._constant(default)

        def wrapper_message(a: dict) -> Any:
            return convert(value_fn(a))

        return wrapper_message

    def _paren_expr(self, tree: lark.Tree) -> Fn:
        return self.compile(_children(tree)[0])

    # -- calls and macros ----------------------------------------------------------------------------------------

    def _args(self, tree: lark.Tree, index: int) -> list[Any]:
        children = _children(tree)
        if len(children) > index:
            return _children(children[index])
        return []

    def _ident_arg(self, tree: lark.Tree) -> Fn:
        name = str(_children(tree)[0])
        args = self._args(tree, 1)
        if name == "has":
            return self._has(args)
        return self._call(name, [self.compile(arg) for arg in args])

    _dot_ident_arg = _ident_arg

    def _member_dot_arg(self, tree: lark.Tree) -> Fn:
        target_tree, name_token = _children(tree)[:2]
        name = str(name_token)
        args = self._args(tree, 2)
        if name in _MACROS:
            return self._macro(name, self.compile(target_tree), args)
        return self._call(name, [self.compile(target_tree), *(self.compile(arg) for arg in args)])

    def _call(self, name: str, args: list[Fn]) -> Fn:
        if name == "matches" and len(args) == 2:
            return self._matches(*args)
        function = resolve(name)
        if function is None:
            return _fail(f"undeclared reference to '{name}'")
        if len(args) == 1:
            (x,) = args

            def call1(a: dict) -> Any:
                return function(x(a))

            return call1
        if len(args) == 2:
            x, y = args

            def call2(a: dict) -> Any:
                return function(x(a), y(a))

            return call2

        def call(a: dict) -> Any:
            return function(*(arg(a) for arg in args))

        return call

    def _matches(self, text: Fn, pattern: Fn) -> Fn:
        """``text.matches(pattern)`` with RE2, charged to the budget. A literal pattern is compiled here, once: RE2's
        refusal (backreference, lookaround, bad syntax, over ``MAX_MEM``) raises ``PatternError`` at compile time."""
        if self._is_constant(pattern) and type(self._constants[pattern]) is str:
            source: str = self._constants[pattern]
            regexp = compile_pattern(source)  # PatternError propagates: the expression does not compile

            def matches_literal(a: dict) -> bool:
                x = text(a)
                if type(x) is not str:
                    raise no_overload("matches", x, source)
                charge(a, match_cost(x, source))
                return search(regexp, x)

            return matches_literal

        def matches_dynamic(a: dict) -> bool:
            x = text(a)
            p = pattern(a)
            if type(x) is not str or type(p) is not str:
                raise no_overload("matches", x, p)
            charge(a, match_cost(x, p))
            try:
                regexp = dynamic_pattern(p)
            except PatternError:
                # the pattern may be payload data: the error names the failure, never the pattern
                raise EvalError("matches: invalid regular expression (RE2 refuses it)") from None
            return search(regexp, x)

        return matches_dynamic

    def _has(self, args: list[Any]) -> Fn:
        node = args[0] if len(args) == 1 else None
        while isinstance(node, lark.Tree) and node.data in _PASS_THROUGH and len(_children(node)) == 1:
            node = _children(node)[0]
        if len(args) != 1:
            return _fail("has() takes one field selection")
        if not (isinstance(node, lark.Tree) and node.data == "member_dot"):
            # celpy accepts any argument: true when it evaluates without an error
            inner = self.compile(args[0])

            def has_value(a: dict) -> bool:
                try:
                    inner(a)
                except BudgetExceeded:
                    raise
                except EvalError:
                    return False
                return True

            return has_value
        target_tree, name = _children(node)
        target = self.compile(target_tree)
        field = str(name)

        def has(a: dict) -> bool:
            # celpy's reading, kept for the mappings written against it: has(e.f) is whether e.f evaluates without
            # an error, so has(payload.owner.login) is false (not an error) when payload.owner is missing.
            try:
                v = target(a)
            except BudgetExceeded:
                raise
            except EvalError:
                return False
            if type(v) is dict or isinstance(v, dict):
                return field in v
            return False

        return has

    def _macro(self, name: str, target: Fn, args: list[Any]) -> Fn:
        variable = args[0] if args else None
        while isinstance(variable, lark.Tree) and variable.data in _PASS_THROUGH and len(_children(variable)) == 1:
            variable = _children(variable)[0]
        if not (isinstance(variable, lark.Tree) and variable.data == "ident"):
            return _fail(f"{name}() needs a variable name as its first argument")
        var = str(_children(variable)[0])
        bodies = [self.compile(arg) for arg in args[1:]]
        if not (len(bodies) == 1 or (name == "map" and len(bodies) == 2)):
            return _fail(f"{name}() takes a variable and an expression")
        return _MACRO_BUILDERS[name](target, var, *bodies)

    # -- literals ------------------------------------------------------------------------------------------------

    def _list_lit(self, tree: lark.Tree) -> Fn:
        items = [self.compile(arg) for arg in self._args(tree, 0)]

        def list_literal(a: dict) -> list:
            return [item(a) for item in items]

        return list_literal

    def _map_lit(self, tree: lark.Tree) -> Fn:
        inits = self._args(tree, 0)
        keys = [self.compile(k) for k in inits[0::2]]
        values = [self.compile(v) for v in inits[1::2]]
        if all(self._is_constant(k) and type(self._constants[k]) is str for k in keys):
            names = [self._constants[k] for k in keys]
            if len(set(names)) != len(names):
                return _fail("duplicate map key")
            pairs = tuple(zip(names, values, strict=True))

            def string_map(a: dict) -> dict:
                return {k: v(a) for k, v in pairs}

            return string_map

        def map_literal(a: dict) -> dict:
            result: dict = {}
            for key_fn, value_fn in zip(keys, values, strict=True):
                k = key_fn(a)
                tk = type(k)
                if not (tk is str or tk is int or tk is Uint or tk is bool):
                    raise EvalError(f"unsupported key type {tk.__name__}")
                if lookup(result, k)[0]:
                    raise EvalError("duplicate map key")
                result[k] = value_fn(a)
            return result

        return map_literal

    def _literal(self, tree: lark.Tree) -> Fn:
        token = _children(tree)[0]
        kind = token.type
        text = str(token)
        if kind == "INT_LIT":
            value = _parse_int(text)
            if not INT64_MIN <= value <= INT64_MAX:
                return _fail("return error for overflow")
            return self._constant(value)
        if kind == "UINT_LIT":
            value = _parse_int(text[:-1])
            if not 0 <= value <= UINT64_MAX:
                return _fail("return error for overflow")
            return self._constant(Uint(value))
        if kind == "FLOAT_LIT":
            return self._constant(float(text))
        if kind in ("STRING_LIT", "MLSTRING_LIT"):
            try:
                return self._constant(str(celstr(token)))
            except (ValueError, UnicodeError):
                return _fail("invalid string literal")
        if kind == "BYTES_LIT":
            try:
                return self._constant(bytes(celbytes(token)))
            except (ValueError, UnicodeError):
                return _fail("invalid bytes literal")
        if kind == "BOOL_LIT":
            return self._constant(text == "true")
        if kind == "NULL_LIT":
            return self._constant(None)
        return _fail(f"unsupported literal {kind}")


def _dotted_name(node: Any) -> str:
    """``a.b.C`` from a member tree of field selections on an identifier ("" when it is anything else)."""
    while isinstance(node, lark.Tree) and node.data in ("member", "primary") and len(_children(node)) == 1:
        node = _children(node)[0]
    if isinstance(node, lark.Tree) and node.data == "member_dot":
        target, field = _children(node)
        prefix = _dotted_name(target)
        return f"{prefix}.{field}" if prefix else ""
    if isinstance(node, lark.Tree) and node.data in ("ident", "dot_ident"):
        return str(_children(node)[0])
    return ""


def _typed(kinds: tuple[type, ...], low: int | None = None, high: int | None = None) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if type(value) not in kinds:
            raise EvalError("no such overload: wrapper field type")
        if low is not None and high is not None and not low <= value <= high:
            raise EvalError("return error for overflow")
        return value

    return convert


_WRAPPERS: dict[str, tuple[Any, Callable[[Any], Any]]] = {
    "google.protobuf.BoolValue": (False, _typed((bool,))),
    "google.protobuf.BytesValue": (b"", _typed((bytes,))),
    "google.protobuf.DoubleValue": (0.0, _typed((float,))),
    "google.protobuf.FloatValue": (0.0, _typed((float,))),
    "google.protobuf.Int32Value": (0, _typed((int,), -(2**31), 2**31 - 1)),
    "google.protobuf.Int64Value": (0, _typed((int,), INT64_MIN, INT64_MAX)),
    "google.protobuf.UInt32Value": (Uint(0), _typed((Uint,), 0, 2**32 - 1)),
    "google.protobuf.UInt64Value": (Uint(0), _typed((Uint,), 0, UINT64_MAX)),
    "google.protobuf.StringValue": ("", _typed((str,))),
}


def _parse_int(text: str) -> int:
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("-")
    if digits[:2].lower() == "0x":
        return sign * int(digits[2:], 16)
    return sign * int(digits, 10)


# -- macros ------------------------------------------------------------------------------------------------------


def _bind(a: dict, var: str) -> Any:
    return a.get(var, _MISSING)


def _restore(a: dict, var: str, saved: Any) -> None:
    if saved is _MISSING:
        a.pop(var, None)
    else:
        a[var] = saved


def _quantifier(name: str, decisive: bool) -> Callable[[Fn, str, Fn], Fn]:
    """``all`` (decided by the first ``false``) and ``exists`` (by the first ``true``): CEL's commutative
    logic, so an error on one element is raised only when no element decides the answer."""

    def macro(target: Fn, var: str, body: Fn) -> Fn:
        def quantify(a: dict) -> bool:
            items = _range(target(a), name)
            charge(a, len(items))
            saved = _bind(a, var)
            error: EvalError | None = None
            try:
                for item in items:
                    a[var] = item
                    try:
                        v = body(a)
                    except EvalError as exc:
                        error = error or exc
                        continue
                    if v is decisive:
                        return decisive
                    if v is not (not decisive):
                        error = error or no_overload(name, v)
            finally:
                _restore(a, var, saved)
            if error is not None:
                raise error
            return not decisive

        return quantify

    return macro


_macro_all = _quantifier("all", False)
_macro_exists = _quantifier("exists", True)


def _macro_exists_one(target: Fn, var: str, body: Fn) -> Fn:
    def exists_one(a: dict) -> bool:
        items = _range(target(a), "exists_one")
        charge(a, len(items))
        saved = _bind(a, var)
        count = 0
        try:
            for item in items:
                a[var] = item
                v = body(a)
                if v is True:
                    count += 1
                elif v is not False:
                    raise no_overload("exists_one", v)
        finally:
            _restore(a, var, saved)
        return count == 1

    return exists_one


def _macro_map(target: Fn, var: str, *bodies: Fn) -> Fn:
    if len(bodies) == 2:
        keep, transform = bodies
    else:
        keep, transform = None, bodies[0]

    def map_(a: dict) -> list:
        items = _range(target(a), "map")
        charge(a, len(items))
        saved = _bind(a, var)
        result = []
        try:
            for item in items:
                a[var] = item
                if keep is not None:
                    k = keep(a)
                    if k is False:
                        continue
                    if k is not True:
                        raise no_overload("map", k)
                result.append(transform(a))
        finally:
            _restore(a, var, saved)
        return result

    return map_


def _macro_filter(target: Fn, var: str, body: Fn) -> Fn:
    def filter_(a: dict) -> list:
        items = _range(target(a), "filter")
        charge(a, len(items))
        saved = _bind(a, var)
        result = []
        try:
            for item in items:
                a[var] = item
                k = body(a)
                if k is True:
                    result.append(item)
                elif k is not False:
                    raise no_overload("filter", k)
        finally:
            _restore(a, var, saved)
        return result

    return filter_


_MACRO_BUILDERS: dict[str, Callable[..., Fn]] = {
    "all": _macro_all,
    "exists": _macro_exists,
    "exists_one": _macro_exists_one,
    "map": _macro_map,
    "filter": _macro_filter,
}

__all__ = ["NUMBERS", "Compiler"]
