"""SCIM 2.0 protocol pieces as pure functions over JSON resources (RFC 7643/7644): filters, PATCH, projection.

Nothing here touches the database or HTTP. ``ScimError`` carries the HTTP status and ``scimType`` the router turns
into a SCIM Error body.

- ``parse_filter(text)`` → a predicate over a resource: ``eq ne co sw ew gt ge lt le pr``, ``and``/``or``/``not``,
  parentheses, value paths (``emails[type eq "work"]``), sub-attributes (``name.givenName``, ``emails.value``) and
  schema-URN prefixes. Attribute names and string values compare case-insensitively (``id`` and ``externalId``
  are case-exact, as RFC 7643 declares them).
- ``apply_patch(resource, operations)`` → a new resource after ``add``/``replace``/``remove`` operations, with or
  without a path (``attr``, ``attr.sub``, ``attr[filter]``, ``attr[filter].sub``).
- ``project(resource, attributes, excluded)`` → the resource as returned (``attributes``/``excludedAttributes``).
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import re2

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
#: Attributes returned whatever ``attributes``/``excludedAttributes`` say.
ALWAYS = frozenset({"id", "schemas"})
#: Attributes compared case-exactly in filters.
CASE_EXACT = frozenset({"id", "externalid"})
#: Attributes a client never sets (computed by the service provider).
READ_ONLY = frozenset({"id", "meta", "groups"})


class ScimError(Exception):
    def __init__(self, status: int, detail: str, scim_type: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(self.status), "detail": self.detail}
        if self.scim_type:
            out["scimType"] = self.scim_type
        return out


def bad_request(detail: str, scim_type: str = "invalidValue") -> ScimError:
    return ScimError(400, detail, scim_type)


# -- attribute access ------------------------------------------------------------------------------------------


def strip_urn(path: str, schemas: tuple[str, ...] = (USER_SCHEMA, GROUP_SCHEMA)) -> str:
    lowered = path.lower()
    for urn in schemas:
        if lowered.startswith(urn.lower() + ":"):
            return path[len(urn) + 1 :]
    return path


def key_of(obj: dict[str, Any], name: str) -> str | None:
    """The key of ``obj`` matching ``name`` case-insensitively (attribute names are case-insensitive)."""
    if name in obj:
        return name
    lowered = name.lower()
    return next((k for k in obj if k.lower() == lowered), None)


def get_attr(obj: Any, name: str) -> Any:
    if not isinstance(obj, dict):
        return None
    key = key_of(obj, name)
    return obj.get(key) if key is not None else None


def values_at(resource: dict[str, Any], path: str) -> list[Any]:
    """Every value at a dotted path; multi-valued attributes fan out."""
    current: list[Any] = [resource]
    for part in strip_urn(path).split("."):
        found: list[Any] = []
        for item in current:
            value = get_attr(item, part)
            if isinstance(value, list):
                found.extend(value)
            elif value is not None:
                found.append(value)
        current = found
    # A multi-valued complex attribute compared directly means its ``value`` sub-attribute.
    return [get_attr(v, "value") if isinstance(v, dict) and key_of(v, "value") else v for v in current]


# -- filters ---------------------------------------------------------------------------------------------------

Predicate = Callable[[dict[str, Any]], bool]

# RE2: filters and PATCH paths are the identity provider's input. RE2 has no VERBOSE flag, so the alternatives are
# joined here; whitespace between tokens is skipped by ``_tokens``.
_TOKEN = re2.compile(
    "|".join(
        (
            r"(?P<lparen>\()",
            r"(?P<rparen>\))",
            r"(?P<lbracket>\[)",
            r"(?P<rbracket>\])",
            r'(?P<string>"(?:[^"\\]|\\.)*")',
            r"(?P<word>[A-Za-z0-9_$:.\-+]+)",
        )
    )
)
_OPS = frozenset({"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"})


@dataclass
class _Tok:
    kind: str
    text: str


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    text = text.strip()
    try:
        # One finditer pass: RE2 encodes the text once (a match call per token would re-encode it each time).
        # Tokens must follow each other with only whitespace between: a match further on means garbage at ``pos``.
        for match in _TOKEN.finditer(text):
            if match.start() != pos:
                break
            kind = match.lastgroup or ""
            out.append(_Tok(kind, match.group(kind)))
            pos = match.end()
            while pos < len(text) and text[pos].isspace():
                pos += 1
    except UnicodeEncodeError:  # a lone surrogate: not text RE2 (or SCIM) can read
        raise bad_request("the filter is not valid Unicode text", "invalidFilter") from None
    if pos < len(text):
        raise bad_request(f"cannot parse the filter near position {pos}", "invalidFilter")
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise bad_request("the filter ends too early", "invalidFilter")
        self.i += 1
        return tok

    def word(self, *options: str) -> bool:
        tok = self.peek()
        if tok is not None and tok.kind == "word" and tok.text.lower() in options:
            self.i += 1
            return True
        return False

    def parse(self) -> Predicate:
        pred = self.or_expr()
        if self.peek() is not None:
            raise bad_request(f"unexpected {self.peek().text!r} in the filter", "invalidFilter")  # type: ignore[union-attr]
        return pred

    def or_expr(self) -> Predicate:
        parts = [self.and_expr()]
        while self.word("or"):
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else (lambda r: any(p(r) for p in parts))

    def and_expr(self) -> Predicate:
        parts = [self.not_expr()]
        while self.word("and"):
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else (lambda r: all(p(r) for p in parts))

    def not_expr(self) -> Predicate:
        if self.word("not"):
            inner = self.atom()
            return lambda r: not inner(r)
        return self.atom()

    def atom(self) -> Predicate:
        tok = self.take()
        if tok.kind == "lparen":
            inner = self.or_expr()
            if self.take().kind != "rparen":
                raise bad_request("unbalanced parentheses in the filter", "invalidFilter")
            return inner
        if tok.kind != "word":
            raise bad_request(f"expected an attribute, found {tok.text!r}", "invalidFilter")
        path = strip_urn(tok.text)
        nxt = self.peek()
        if nxt is not None and nxt.kind == "lbracket":
            self.take()
            inner = self.or_expr()
            if self.take().kind != "rbracket":
                raise bad_request("unbalanced brackets in the filter", "invalidFilter")
            return lambda r: any(isinstance(e, dict) and inner(e) for e in _elements(r, path))
        op = self.take()
        name = op.text.lower()
        if op.kind != "word" or (name not in _OPS and name != "pr"):
            raise bad_request(f"unknown filter operator {op.text!r}", "invalidFilter")
        if name == "pr":
            return lambda r: any(v not in (None, "", [], {}) for v in values_at(r, path))
        value = _literal(self.take())
        exact = path.split(".")[-1].lower() in CASE_EXACT
        return lambda r: any(_compare(name, v, value, exact) for v in values_at(r, path))


def _elements(resource: dict[str, Any], path: str) -> list[Any]:
    value: Any = resource
    for part in path.split("."):
        value = get_attr(value, part)
    return value if isinstance(value, list) else ([value] if value is not None else [])


def _literal(tok: _Tok) -> Any:
    if tok.kind == "string":
        return json.loads(tok.text)
    if tok.kind == "word":
        lowered = tok.text.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        if lowered == "null":
            return None
        with contextlib.suppress(ValueError):  # not a number either: refused below
            return float(tok.text) if "." in tok.text else int(tok.text)
    raise bad_request(f"invalid filter value {tok.text!r}", "invalidFilter")


def _compare(op: str, actual: Any, expected: Any, exact: bool) -> bool:
    if isinstance(actual, str) and isinstance(expected, str) and not exact:
        actual, expected = actual.lower(), expected.lower()
    if op == "eq":
        return actual == expected
    if op == "ne":
        return actual != expected
    if not isinstance(actual, str | int | float) or isinstance(actual, bool) != isinstance(expected, bool):
        return False
    try:
        if op == "co":
            return isinstance(actual, str) and str(expected) in actual
        if op == "sw":
            return isinstance(actual, str) and actual.startswith(str(expected))
        if op == "ew":
            return isinstance(actual, str) and actual.endswith(str(expected))
        return {"gt": actual > expected, "ge": actual >= expected, "lt": actual < expected, "le": actual <= expected}[
            op
        ]
    except TypeError:
        return False


def parse_filter(text: str) -> Predicate:
    return _Parser(text).parse()


# -- PATCH -----------------------------------------------------------------------------------------------------

_PATH = re2.compile(r"^(?P<attr>[A-Za-z0-9_$\-]+)(?:\[(?P<filter>.*)\])?(?:\.(?P<sub>[A-Za-z0-9_$\-]+))?$")


@dataclass(frozen=True)
class Path:
    attr: str
    filter: Predicate | None
    sub: str | None


def parse_path(text: str, schemas: tuple[str, ...]) -> Path:
    raw = strip_urn(text.strip(), schemas)
    try:
        match = _PATH.match(raw)
    except UnicodeEncodeError:  # a lone surrogate
        match = None
    if match is None:
        raise bad_request(f"invalid PATCH path {text!r}", "invalidPath")
    flt = match.group("filter")
    return Path(match.group("attr"), parse_filter(flt) if flt is not None else None, match.group("sub"))


def _merge_value(resource: dict[str, Any], name: str, value: Any, *, replace: bool) -> None:
    key = key_of(resource, name) or name
    current = resource.get(key)
    if isinstance(current, list) and not replace:
        items = value if isinstance(value, list) else [value]
        resource[key] = current + [v for v in items if v not in current]
    elif isinstance(current, dict) and isinstance(value, dict):
        for sub, sub_value in value.items():
            current[key_of(current, sub) or sub] = sub_value
    else:
        resource[key] = value


def apply_patch(resource: dict[str, Any], operations: Any, schemas: tuple[str, ...]) -> dict[str, Any]:
    """Apply a PatchOp's ``Operations`` to a copy of ``resource``."""
    if not isinstance(operations, list) or not operations:
        raise bad_request("a PatchOp needs a non-empty Operations list", "invalidSyntax")
    out = copy.deepcopy(resource)
    for operation in operations:
        if not isinstance(operation, dict):
            raise bad_request("each PATCH operation must be an object", "invalidSyntax")
        op = str(get_attr(operation, "op") or "").lower()
        path_text = get_attr(operation, "path")
        value = get_attr(operation, "value")
        if op not in ("add", "replace", "remove"):
            raise bad_request(f"unknown PATCH op {op!r}", "invalidSyntax")
        if not path_text:
            if op == "remove":
                raise bad_request("remove needs a path", "noTarget")
            if not isinstance(value, dict):
                raise bad_request(f"{op} without a path needs an object value", "invalidValue")
            for name, item in value.items():
                name = strip_urn(name, schemas)
                if name.lower() in READ_ONLY or name.lower() == "schemas":
                    continue
                _merge_value(out, name, item, replace=op == "replace")
            continue
        path = parse_path(str(path_text), schemas)
        if path.attr.lower() in READ_ONLY:
            raise bad_request(f"{path.attr} is read-only", "mutability")
        if op != "remove" and "value" not in {k.lower() for k in operation}:
            raise bad_request(f"{op} needs a value", "invalidValue")
        _apply_path(out, op, path, value)
    return out


def _apply_path(resource: dict[str, Any], op: str, path: Path, value: Any) -> None:
    key = key_of(resource, path.attr) or path.attr
    current = resource.get(key)
    if path.filter is None:
        if path.sub is None:
            if op == "remove":
                if isinstance(current, list) and isinstance(value, list) and value:
                    # Azure AD style: remove listed members from a multi-valued attribute.
                    wanted = {json.dumps(_norm(v), sort_keys=True) for v in value}
                    resource[key] = [v for v in current if json.dumps(_norm(v), sort_keys=True) not in wanted]
                else:
                    resource.pop(key, None)
            else:
                _merge_value(resource, path.attr, value, replace=op == "replace")
            return
        if op == "remove":
            if isinstance(current, dict):
                sub_key = key_of(current, path.sub)
                if sub_key is not None:
                    current.pop(sub_key)
            return
        if isinstance(current, list):  # "emails.value" on a multi-valued attribute: every element
            for element in current:
                if isinstance(element, dict):
                    element[key_of(element, path.sub) or path.sub] = value
            return
        if not isinstance(current, dict):
            current = resource[key] = {}
        current[key_of(current, path.sub) or path.sub] = value
        return
    elements = current if isinstance(current, list) else []
    matched = [e for e in elements if isinstance(e, dict) and path.filter(e)]
    if op == "remove":
        if path.sub is None:
            resource[key] = [e for e in elements if e not in matched]
        else:
            for element in matched:
                sub_key = key_of(element, path.sub)
                if sub_key is not None:
                    element.pop(sub_key)
        return
    if not matched:
        if op == "replace":
            raise bad_request(f"no value of {path.attr} matches the path filter", "noTarget")
        raise bad_request(f"add with a filtered path needs a matching value of {path.attr}", "noTarget")
    for element in matched:
        if path.sub is not None:
            element[key_of(element, path.sub) or path.sub] = value
        elif isinstance(value, dict):
            if op == "replace":
                element.clear()
            element.update(value)
        else:
            raise bad_request(f"{op} on {path.attr}[…] needs an object value", "invalidValue")


def _norm(value: Any) -> Any:
    if isinstance(value, dict):
        return {k.lower(): v for k, v in value.items() if k.lower() in ("value",)} or value
    return value


# -- projection ------------------------------------------------------------------------------------------------


def _split(text: str | None, schemas: tuple[str, ...]) -> list[str]:
    if not text:
        return []
    return [strip_urn(p.strip(), schemas) for p in text.split(",") if p.strip()]


def project(
    resource: dict[str, Any], attributes: str | None, excluded: str | None, schemas: tuple[str, ...]
) -> dict[str, Any]:
    wanted = _split(attributes, schemas)
    if wanted:
        out: dict[str, Any] = {}
        for name, value in resource.items():
            if name in ALWAYS:
                out[name] = value
                continue
            subs = [w.split(".", 1)[1] for w in wanted if "." in w and w.split(".", 1)[0].lower() == name.lower()]
            if any(w.lower() == name.lower() for w in wanted):
                out[name] = value
            elif subs and isinstance(value, dict):
                out[name] = {k: v for k, v in value.items() if any(k.lower() == s.lower() for s in subs)}
            elif subs and isinstance(value, list):
                out[name] = [
                    {k: v for k, v in e.items() if any(k.lower() == s.lower() for s in subs)}
                    if isinstance(e, dict)
                    else e
                    for e in value
                ]
        return out
    drop = _split(excluded, schemas)
    out = copy.deepcopy(resource)
    for name in drop:
        head, _, sub = name.partition(".")
        key = key_of(out, head)
        if key is None or key in ALWAYS:
            continue
        if not sub:
            out.pop(key)
        elif isinstance(out[key], dict):
            sub_key = key_of(out[key], sub)
            if sub_key is not None:
                out[key].pop(sub_key)
    return out


def clean(value: Any) -> Any:
    """Drop nulls and empty containers (SCIM treats null as unassigned)."""
    if isinstance(value, dict):
        out = {k: clean(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, [], {})}
    if isinstance(value, list):
        return [v for v in (clean(i) for i in value) if v not in (None, [], {})]
    return value
