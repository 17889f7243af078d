#!/usr/bin/env python3
"""Write ``generated/`` from the ingest annotations on the internal models (``src/ingest/models/``), and the JSON
Schema of definition files (``docs/schemas/definition.schema.json``) from the models that validate them.

    scripts/codegen.py           regenerate generated/ and create missing persistence starting points
    scripts/codegen.py --check   exit 1 with a one-line reason when generated/ is stale (writes nothing)

Generated files start with ``# DO NOT EDIT``. The per-schema persistence starting points
(``src/ingest/persistence/<schema>.py``) are created once, when absent, and never overwritten.
The project root is this script's parent directory, so a copy of the project checks its own models.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
import typing
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = "# DO NOT EDIT: written by scripts/codegen.py from the ingest annotations in src/ingest/models/.\n"


def _load_catalog():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(ROOT / "src"))
    from ingest.catalog import builtin_catalog

    # Host packages' models are left out on purpose: the runtime builds their types from the classes.
    return builtin_catalog()


# -- rendering -------------------------------------------------------------------------------------------------


def camel(schema: str) -> str:
    return "".join(part.capitalize() for part in schema.split("_"))


def render_type(annotation: object) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(render_type(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(render_type(a) for a in typing.get_args(annotation))
        return f"{origin.__name__}[{args}]"
    if annotation is type(None):
        return "None"
    if annotation is typing.Any:
        return "Any"
    if annotation is datetime:
        return "UtcDatetime"
    if isinstance(annotation, type) and annotation.__module__ == "builtins":
        return annotation.__name__
    raise SystemExit(f"codegen: cannot render field type {annotation!r}")


def q(value: object) -> str:
    """A Python literal in ruff's style (double quotes)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, tuple):
        return _tuple(value)
    return repr(value)


def _tuple(values: typing.Iterable[object]) -> str:
    items = [q(v) for v in values]
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def _keyword(name: str, values: typing.Iterable[object], indent: str = "        ") -> list[str]:
    """``name=(…),`` on one line, or one item per line when that would pass 120 characters."""
    items = list(values)
    line = f"{indent}{name}={_tuple(items)},"
    if len(line) <= 120:
        return [line]
    return [f"{indent}{name}=(", *[f"{indent}    {q(v)}," for v in items], f"{indent}),"]


def render_init() -> str:
    return HEADER + '"""Code generated from the ingest annotations: metadata, ingest types, routing."""\n'


def render_readme() -> str:
    return (
        "# DO NOT EDIT: written by scripts/codegen.py.\n\n"
        "Code written by `scripts/codegen.py` from the ingest annotations on the internal models in\n"
        "`src/ingest/models/`:\n\n"
        "- `metadata.py`: per model, the allowed, required, upsert, lookup, context and reference fields;\n"
        "- `ingest_types.py`: a typed pydantic ingest type per model (`<Model>Input`), its request envelope\n"
        "  (`<Model>IngestRequested`) and its topic;\n"
        "- `routing.py`: schema name → persistence function (`src/ingest/persistence/<schema>.py`).\n\n"
        "Change the annotations and run `scripts/codegen.py`; `scripts/codegen.py --check` fails when these files\n"
        "are stale.\n"
    )


def render_metadata(specs: dict) -> str:  # type: ignore[type-arg]
    lines = [
        HEADER,
        '"""What each internal model accepts from a mapping."""\n',
        "from __future__ import annotations\n",
        "from dataclasses import dataclass\n\n",
        "@dataclass(frozen=True)",
        "class ModelMetadata:",
        "    schema: str",
        "    table: str",
        "    topic: str",
        "    allowed: tuple[str, ...]",
        "    required: tuple[str, ...]",
        "    upsert: tuple[str, ...]",
        "    lookup: tuple[str, ...]",
        "    #: (column, context source) pairs filled from the integration context.",
        "    context: tuple[tuple[str, str], ...]",
        "    #: (field, target schema, column receiving the target's ID) triples resolved at persistence.",
        "    references: tuple[tuple[str, str, str], ...]",
        "    stock_persistence: bool\n\n",
        "MODELS: dict[str, ModelMetadata] = {",
    ]
    for schema, spec in specs.items():
        lines += [
            f"    {q(schema)}: ModelMetadata(",
            f"        schema={q(schema)},",
            f"        table={q(spec.table)},",
            f"        topic={q(spec.topic)},",
            *_keyword("allowed", spec.allowed),
            *_keyword("required", spec.required),
            *_keyword("upsert", spec.upsert),
            *_keyword("lookup", spec.lookup),
            *_keyword("context", spec.context),
            *_keyword("references", ((r.field, r.target, r.into) for r in spec.references)),
            f"        stock_persistence={spec.stock_persistence!r},",
            "    ),",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_types(specs: dict) -> str:  # type: ignore[type-arg]
    body: list[str] = []
    for schema, spec in specs.items():
        name = camel(schema)
        fields = spec.model.model_fields
        body += [
            "",
            f"class {name}Input(IngestInput):",
            f'    """A validated ``{schema}`` record as a mapping produces it."""\n',
            "    schema_name: ClassVar[str] = " + q(schema),
            "    topic: ClassVar[str] = " + q(spec.topic) + "\n",
        ]
        for field in spec.allowed:
            rendered = render_type(fields[field].annotation)
            default = "" if field in spec.required else " = None"
            body.append(f"    {field}: {rendered}{default}")
        body += [
            "\n",
            f"class {name}IngestRequested(BaseModel):",
            f'    """A ``{schema}`` record on its way to persistence, with where it came from."""\n',
            "    model_config = ConfigDict(frozen=True)",
            "    topic: ClassVar[str] = " + q(spec.topic) + "\n",
            "    metadata: IngestMetadata",
            f"    input: {name}Input\n",
        ]
    inputs = [f"    {q(s)}: {camel(s)}Input," for s in specs]
    requested = [f"    {q(s)}: {camel(s)}IngestRequested," for s in specs]
    topics = [f"    {q(s)}: {q(spec.topic)}," for s, spec in specs.items()]
    return (
        "\n".join(
            [
                HEADER,
                '"""Typed ingest types: what each internal model accepts from a mapping, and its topic."""\n',
                "from __future__ import annotations\n",
                "from typing import Any, ClassVar\n",
                "from pydantic import BaseModel, ConfigDict\n",
                "from ingest.fields import IngestInput, IngestMetadata, UtcDatetime\n",
                '__all__ = ["INPUT_TYPES", "REQUESTED_TYPES", "TOPICS", "Any"]\n',
                *body,
                "",
                "INPUT_TYPES: dict[str, type[IngestInput]] = {",
                *inputs,
                "}",
                "REQUESTED_TYPES: dict[str, type[BaseModel]] = {",
                *requested,
                "}",
                "TOPICS: dict[str, str] = {",
                *topics,
                "}",
            ]
        ).replace("\n\n\n\n", "\n\n\n")
        + "\n"
    )


def render_routing(specs: dict) -> str:  # type: ignore[type-arg]
    imports = [f"from ingest.persistence import {s} as _{s}" for s in sorted(specs)]
    routes = [f"    {q(s)}: _{s}.persist," for s in specs]
    return (
        "\n".join(
            [
                HEADER,
                '"""Ingest routing: schema name → the function that persists a batch of it."""\n',
                "from __future__ import annotations\n",
                "from collections.abc import Callable\n",
                *imports,
                "from ingest.persistence.stock import PersistBatch, PersistRejection\n",
                "Persist = Callable[[PersistBatch], list[PersistRejection]]\n",
                "ROUTES: dict[str, Persist] = {",
                *routes,
                "}",
            ]
        )
        + "\n"
    )


def render_persistence(schema: str, spec) -> str:  # type: ignore[no-untyped-def]
    keys = ", ".join(["tenant_id", "integration_id", *spec.upsert])
    doc = (
        f'"""Persistence for ``{schema}``.\n\n'
        "A starting point written once by scripts/codegen.py and never overwritten: modify as needed.\n"
        '"""\n\n'
        "from __future__ import annotations\n\n"
    )
    if spec.stock_persistence:
        return doc + (
            "from ingest.persistence.stock import PersistBatch, PersistRejection, stock_upsert\n\n\n"
            "def persist(batch: PersistBatch) -> list[PersistRejection]:\n"
            f'    """Batched upsert on ({keys})."""\n'
            "    return stock_upsert(batch)\n"
        )
    return doc + (
        "from ingest.persistence.stock import PersistBatch, PersistRejection\n\n\n"
        "def persist(batch: PersistBatch) -> list[PersistRejection]:\n"
        f'    raise NotImplementedError("write the persistence of {schema}")\n'
    )


def render_definition_schema() -> str:
    """The definition-file JSON Schema, from ``definitions.custom_oauth2.spec``'s pydantic models."""
    from definitions.custom_oauth2.schema import render

    return render()


def expected_files(specs: dict) -> dict[Path, str]:  # type: ignore[type-arg]
    out = ROOT / "generated"
    return {
        out / "__init__.py": render_init(),
        out / "README.md": render_readme(),
        out / "metadata.py": render_metadata(specs),
        out / "ingest_types.py": render_types(specs),
        out / "routing.py": render_routing(specs),
        ROOT / "docs" / "schemas" / "definition.schema.json": render_definition_schema(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail when generated/ is stale; write nothing")
    args = parser.parse_args(argv)
    specs = _load_catalog()
    files = expected_files(specs)
    persistence = ROOT / "src" / "ingest" / "persistence"
    stubs = {persistence / f"{s}.py": render_persistence(s, spec) for s, spec in specs.items()}
    if args.check:
        for path, text in files.items():
            rel = path.relative_to(ROOT)
            if not path.exists():
                print(f"codegen: {rel} is missing; run scripts/codegen.py")
                return 1
            if path.read_text() != text:
                print(f"codegen: {rel} is stale; run scripts/codegen.py")
                return 1
        extra = sorted(p for p in (ROOT / "generated").glob("*.py") if p not in files)
        if extra:
            print(f"codegen: {extra[0].relative_to(ROOT)} is not generated any more; run scripts/codegen.py")
            return 1
        missing = [p for p in stubs if not p.exists()]
        if missing:
            print(f"codegen: {missing[0].relative_to(ROOT)} is missing; run scripts/codegen.py")
            return 1
        return 0
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    for stale in sorted(p for p in (ROOT / "generated").glob("*.py") if p not in files):
        stale.unlink()
        print(f"removed {stale.relative_to(ROOT)}")
    for path, text in stubs.items():
        if not path.exists():
            path.write_text(text)
            print(f"created {path.relative_to(ROOT)} (a starting point: edit it freely)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
