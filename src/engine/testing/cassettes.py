"""Cassettes: recorded provider exchanges, in the vcrpy / pytest-recording YAML format (version 1).

Why that format: it is what Python HTTP tests already read (vcrpy, pytest-recording, and VCR's ports), it is plain
YAML a reviewer can read in a diff, and its ``metadata`` key carries what Tether needs besides (the definition and
operation recorded). Tether writes and reads it itself, with PyYAML's safe loader, rather than through vcrpy: vcrpy
replays by patching httpx's client classes for the whole process, while Tether replays at its own seam (the egress
guard's transport, ``engine.testing.replay``) so a replayed definition runs every line it runs in production.
``tests/testing/test_cassettes.py`` loads our files with vcrpy's own deserializer to keep the formats one.

A cassette file::

    interactions:
    - request:
        body: null
        headers: {Accept: ['application/json']}
        method: GET
        uri: https://api.github.com/installation/repositories?per_page=100
      response:
        body: {string: '{"total_count": 2, ...}'}
        headers: {Content-Type: ['application/json']}
        status: {code: 200, message: OK}
    metadata: {definition: github_app, operation: RepositorySync}
    version: 1

Public API (``engine.testing.cassettes``): :func:`load`, :func:`dump`, :class:`Interaction`, :class:`Request`,
:class:`Response`, :class:`Cassette` (interactions and metadata), :func:`load_cassette`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml

__all__ = [
    "FORMAT_VERSION",
    "Cassette",
    "CassetteError",
    "Interaction",
    "Request",
    "Response",
    "dump",
    "dump_cassette",
    "load",
    "load_cassette",
    "parse_body",
]

#: vcrpy's ``CASSETTE_FORMAT_VERSION``.
FORMAT_VERSION = 1


class CassetteError(ValueError):
    """A cassette file that is not a version-1 vcrpy cassette (the message names the file and what is wrong)."""


def parse_body(content: bytes, content_type: str) -> Any:
    """A body as a test wants it: parsed JSON when it is JSON (by type or by shape), else text, ``None`` if empty."""
    if not content:
        return None
    text = content.decode("utf-8", "replace")
    if "json" in content_type.lower() or text.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _joined(headers: Mapping[str, list[str]]) -> dict[str, str]:
    return {name: ", ".join(values) for name, values in headers.items()}


def _header(headers: Mapping[str, list[str]], name: str) -> str:
    wanted = name.lower()
    return next((", ".join(v) for k, v in headers.items() if k.lower() == wanted), "")


@dataclass(frozen=True)
class Request:
    """What the definition sent. ``headers`` joins repeated values with ``", "``; ``raw_headers`` keeps them."""

    method: str
    url: str
    raw_headers: dict[str, list[str]] = field(default_factory=dict)
    content: bytes = b""

    @property
    def headers(self) -> dict[str, str]:
        return _joined(self.raw_headers)

    @property
    def body(self) -> Any:
        """Parsed JSON when JSON, the text otherwise (a form body stays text: :meth:`form` parses it)."""
        return parse_body(self.content, _header(self.raw_headers, "content-type"))

    @property
    def path(self) -> str:
        return urlsplit(self.url).path or "/"

    @property
    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(urlsplit(self.url).query, keep_blank_values=True)

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.content.decode("utf-8", "replace"), keep_blank_values=True))


@dataclass(frozen=True)
class Response:
    """What the provider answered."""

    status: int
    raw_headers: dict[str, list[str]] = field(default_factory=dict)
    content: bytes = b""
    message: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return _joined(self.raw_headers)

    def header(self, name: str) -> str:
        return _header(self.raw_headers, name)

    @property
    def body(self) -> Any:
        """Parsed JSON when JSON, the text otherwise, ``None`` when empty."""
        return parse_body(self.content, self.header("content-type"))

    def with_status(self, status: int, *, headers: Mapping[str, str] | None = None, body: Any = ...) -> Response:
        """This response rewritten (the standard suite derives a 401 or a 429 from a recorded success)."""
        raw = {k: list(v) for k, v in self.raw_headers.items()}
        for name, value in (headers or {}).items():
            raw = {k: v for k, v in raw.items() if k.lower() != name.lower()}
            raw[name] = [value]
        content = self.content
        if body is not ...:
            content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return replace(self, status=status, raw_headers=raw, content=content, message=_reason(status))


@dataclass(frozen=True)
class Interaction:
    request: Request
    response: Response


@dataclass(frozen=True)
class Cassette:
    interactions: list[Interaction]
    metadata: dict[str, Any] = field(default_factory=dict)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _headers_in(value: Any, where: str) -> dict[str, list[str]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CassetteError(f"{where}: headers must be a mapping")
    out: dict[str, list[str]] = {}
    for name, values in value.items():
        items = values if isinstance(values, list) else [values]
        out[str(name)] = [str(v) for v in items]
    return out


def _bytes_in(value: Any) -> bytes:
    """vcrpy writes a body as a string (or ``!!binary`` bytes); a response body is ``{string: ...}``."""
    if isinstance(value, dict):
        value = value.get("string")
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")


def _interaction(raw: Any, where: str) -> Interaction:
    if not (isinstance(raw, dict) and isinstance(raw.get("request"), dict) and isinstance(raw.get("response"), dict)):
        raise CassetteError(f"{where}: an interaction has a request and a response mapping")
    req, res = raw["request"], raw["response"]
    status = res.get("status") or {}
    code = status.get("code") if isinstance(status, dict) else status
    if not isinstance(code, int) or not isinstance(req.get("method"), str) or not isinstance(req.get("uri"), str):
        raise CassetteError(f"{where}: the request needs a method and uri, the response a status code")
    return Interaction(
        Request(
            method=req["method"].upper(),
            url=req["uri"],
            raw_headers=_headers_in(req.get("headers"), where),
            content=_bytes_in(req.get("body")),
        ),
        Response(
            status=code,
            raw_headers=_headers_in(res.get("headers"), where),
            content=_bytes_in(res.get("body")),
            message=str(status.get("message", "")) if isinstance(status, dict) else _reason(code),
        ),
    )


def load_cassette(path: str | Path) -> Cassette:
    """Read a cassette file (interactions in recorded order, and its metadata)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CassetteError(f"{path}: not YAML ({type(exc).__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("interactions"), list):
        raise CassetteError(f"{path}: a cassette is a mapping with an 'interactions' list")
    if data.get("version") != FORMAT_VERSION:
        raise CassetteError(f"{path}: cassette format version {data.get('version')!r}, expected {FORMAT_VERSION}")
    interactions = [_interaction(raw, f"{path} #{i}") for i, raw in enumerate(data["interactions"])]
    metadata = data.get("metadata") or {}
    return Cassette(interactions, dict(metadata) if isinstance(metadata, dict) else {})


def load(path: str | Path) -> list[Interaction]:
    """The interactions of a cassette file, in recorded order."""
    return load_cassette(path).interactions


def _text(content: bytes) -> str | bytes:
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return content  # written as !!binary, as vcrpy does for bodies that are not text


def _raw(interaction: Interaction) -> dict[str, Any]:
    req, res = interaction.request, interaction.response
    return {
        "request": {
            "body": _text(req.content) if req.content else None,
            "headers": req.raw_headers,
            "method": req.method,
            "uri": req.url,
        },
        "response": {
            "body": {"string": _text(res.content)},
            "headers": res.raw_headers,
            "status": {"code": res.status, "message": res.message or _reason(res.status)},
        },
    }


class _Dumper(yaml.SafeDumper):
    """Block style; long and multi-line strings stay readable."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_cassette(cassette: Cassette, path: str | Path) -> Path:
    """Write ``cassette`` to ``path`` (folders made as needed); returns the path."""
    path = Path(path)
    data: dict[str, Any] = {"interactions": [_raw(i) for i in cassette.interactions], "version": FORMAT_VERSION}
    if cassette.metadata:
        data["metadata"] = cassette.metadata
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.dump(data, Dumper=_Dumper, sort_keys=True, allow_unicode=True, width=120), encoding="utf-8")
    return path


def dump(interactions: Iterable[Interaction], path: str | Path, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write ``interactions`` as a cassette file."""
    return dump_cassette(Cassette(list(interactions), dict(metadata or {})), path)
