"""Where recorded payloads come from, for mapping coverage: cassettes, fixture files, or files given.

Every source comes down to *exchanges*: an answer's JSON body, with the request path when it is known (a
cassette records it; a fixture file does not). ``records_in`` finds the records an answer carries: the body
itself when it is a list, the lists of objects at most two levels down (``data``, ``value``, ``result.items``),
else the object itself and its object members (``{"data": {...}}``, a single resource). Which mapping a record
belongs to is the coverage's business (``engine.devtools.coverage``).

Cassettes are vcrpy's YAML format (version 1: ``interactions[].request.uri`` and ``response.body.string``), read
with PyYAML's safe loader; a cassette whose ``metadata.kind`` is ``webhook`` (``engine.testing``'s example
deliveries) gives its requests' bodies instead. Fixture files are Tether's own recorded answers (``{"status",
"headers", "body"}``), the providers' published examples (``{"source", "body"}``), or a plain JSON payload or a
list of them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

#: Files read as cassettes.
CASSETTE_SUFFIXES = (".yaml", ".yml")
#: Where a definition's recordings are looked for, relative to the working directory (``{id}`` is its ID) and to
#: the definition's package directory.
CASSETTE_DIRS = ("tests/cassettes/{id}", "tests/fixtures/{id}/cassettes")
FIXTURE_DIRS = ("tests/fixtures/{id}",)
PACKAGE_DIRS = ("cassettes", "fixtures")


class PayloadSourceError(ValueError):
    """A payload file that cannot be read (the message names the file and why)."""


@dataclass(frozen=True)
class Exchange:
    """One recorded answer: its JSON ``body``, the request's ``method`` and ``path`` when known, and where it came
    from (``file`` or ``file#interaction``)."""

    body: Any
    origin: str
    method: str | None = None
    path: str | None = None


@dataclass(frozen=True)
class Found:
    """The exchanges of one look-up and what was read: ``kind`` is ``cassettes``, ``fixtures`` or ``files``."""

    kind: str
    exchanges: tuple[Exchange, ...]
    files: tuple[str, ...]


def read_file(path: Path) -> list[Exchange]:
    """The exchanges of one file: a cassette (``.yaml``/``.yml``) or a JSON file."""
    if path.suffix.lower() in CASSETTE_SUFFIXES:
        return cassette_exchanges(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeError, ValueError) as exc:
        raise PayloadSourceError(f"{path}: not a JSON file ({type(exc).__name__})") from None
    if isinstance(data, dict) and "body" in data and ({"status", "source"} & set(data)):
        status = data.get("status", 200)
        if not (isinstance(status, int) and 200 <= status < 300):
            return []  # a recorded error answer carries no records
        return [Exchange(data["body"], str(path))]
    return [Exchange(data, str(path))]


def cassette_exchanges(path: Path) -> list[Exchange]:
    """The successful JSON answers of a vcrpy cassette, with their request's method and path."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeError, yaml.YAMLError) as exc:
        raise PayloadSourceError(f"{path}: not a YAML cassette ({type(exc).__name__})") from None
    if not isinstance(document, dict) or not isinstance(document.get("interactions"), list):
        raise PayloadSourceError(f"{path}: a cassette has a list of interactions")
    metadata = document.get("metadata") if isinstance(document.get("metadata"), dict) else {}
    if metadata.get("kind") == "webhook":
        return _deliveries(path, document["interactions"])
    found = []
    for index, interaction in enumerate(document["interactions"]):
        request = interaction.get("request") or {} if isinstance(interaction, dict) else {}
        response = interaction.get("response") or {} if isinstance(interaction, dict) else {}
        status = (response.get("status") or {}).get("code") if isinstance(response.get("status"), dict) else None
        if not (isinstance(status, int) and 200 <= status < 300):
            continue
        body = response.get("body")
        text = body.get("string") if isinstance(body, dict) else body
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        if not isinstance(text, str) or not text.strip():
            continue
        try:
            parsed = json.loads(text)
        except ValueError:
            continue  # not JSON: nothing a mapping reads
        uri = str(request.get("uri", ""))
        found.append(Exchange(parsed, f"{path}#{index}", str(request.get("method", "")) or None, urlsplit(uri).path))
    return found


def _deliveries(path: Path, interactions: list[Any]) -> list[Exchange]:
    """A webhook cassette holds example deliveries as requests: their JSON bodies are the payloads."""
    found = []
    for index, interaction in enumerate(interactions):
        request = interaction.get("request") if isinstance(interaction, dict) else None
        body = request.get("body") if isinstance(request, dict) else None
        text = body.get("string") if isinstance(body, dict) else body
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        if not isinstance(text, str) or not text.strip():
            continue
        try:
            found.append(Exchange(json.loads(text), f"{path}#{index}"))
        except ValueError:
            continue  # a form-encoded delivery (Slack's slash commands): no JSON payload to read
    return found


def read_paths(paths: Iterable[Path]) -> Found:
    """Every exchange of the files and folders given (a folder: its ``*.json`` and cassette files, recursively)."""
    files = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and _readable(p))
        elif path.is_file():
            files.append(path)
        else:
            raise PayloadSourceError(f"{path}: no such file or folder")
    exchanges = [e for f in files for e in read_file(f)]
    return Found("files", tuple(exchanges), tuple(str(f) for f in files))


def discover(definition_id: str, *, root: Path, package_dir: Path | None) -> Found:
    """The definition's recordings: its cassettes when there are any, else its fixture files (the recorded
    answers and published examples under ``tests/fixtures/<id>/``, or ``fixtures/`` beside the package)."""
    for kind, dirs, local in (("cassettes", CASSETTE_DIRS, "cassettes"), ("fixtures", FIXTURE_DIRS, "fixtures")):
        folders = [root / d.format(id=definition_id) for d in dirs]
        if package_dir is not None:
            folders.append(package_dir / local)
        files = sorted(
            p
            for folder in folders
            if folder.is_dir()
            for p in folder.rglob("*")
            if p.is_file() and _readable(p) and (kind == "fixtures" or p.suffix.lower() in CASSETTE_SUFFIXES)
        )
        if kind == "fixtures":
            files = [f for f in files if "cassettes" not in f.relative_to(f.anchor).parts]
        if files:
            return Found(kind, tuple(e for f in files for e in read_file(f)), tuple(str(f) for f in files))
    return Found("none", (), ())


def _readable(path: Path) -> bool:
    return path.suffix.lower() in (".json", *CASSETTE_SUFFIXES)


def records_in(body: Any) -> list[Any]:
    """The records an answer carries (see the module docstring)."""
    if isinstance(body, list):
        return [item for item in body if isinstance(item, dict)]
    if not isinstance(body, dict):
        return []
    lists = list(_lists(body, depth=2))
    if lists:
        return [record for found in lists for record in found]
    return [body, *(value for value in body.values() if isinstance(value, dict))]


def _lists(body: dict[str, Any], depth: int) -> Iterator[list[Any]]:
    for value in body.values():
        if isinstance(value, list):
            records = [item for item in value if isinstance(item, dict)]
            if records:
                yield records
        elif isinstance(value, dict) and depth > 1:
            yield from _lists(value, depth - 1)
