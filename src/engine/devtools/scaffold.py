"""``tether definitions new``: a definition skeleton written from templates (``templates/``, Jinja2).

The skeleton registers as it is (``tether definitions check`` passes) and leaves ``TODO(provider)`` only where the
provider's documentation decides: its URLs, how the credential is sent, where the account is, the listing's path,
records and pagination, and the field names of the mapping. Everything else is the kit's: the client is the egress
guard's, bearer auth is ``BearerAuth``, error answers go through ``raise_for_status``, and the listing is a
declarative stream (``engine.kit.streams``: the loop, the repeated-cursor and short-listing guards, checkpoints,
429 deferral) so no author writes a pagination loop.

``--webhook hmac|standard-webhooks`` adds ``webhooks.py``: one webhook (``events``) verified with the engine's
``HmacSha256`` or ``StandardWebhooks`` and a secret Tether generates per endpoint, subscribed at the provider by
``register``, whose one event yields its record into the first stream's (schema, variant), so the stream's mapping
maps deliveries too. A data file has no webhooks (its format declares none), so ``--webhook`` goes with a package.

A package goes into the built-in definitions folder (``src/definitions/``) or ``--dir``; a data file (``--data``:
OAuth 2.0 only, the format's one auth) into the first ``TETHER_DEFINITIONS_DIR`` folder or ``--dir``.
"""

from __future__ import annotations

import importlib.util
import keyword
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import jinja2
import re2

from engine.settings import Settings

AUTHS = ("oauth2", "api-key", "app-install")
#: ``--webhook``: the verifier of the skeleton's one webhook (``HmacSha256`` or ``StandardWebhooks``).
WEBHOOKS = ("hmac", "standard-webhooks")
_NAME = re2.compile(r"^[a-z][a-z0-9_]{0,62}$")
TEMPLATES = Path(__file__).parent / "templates"
#: The package's files, each rendered from ``templates/package/<name>.jinja``.
PACKAGE_FILES = ("__init__.py", "definition.py", "streams.py", "README.md")
#: Written besides them with ``--webhook``.
WEBHOOK_FILE = "webhooks.py"


class ScaffoldError(ValueError):
    """A refused scaffold: a taken or invalid name, an unknown auth, nowhere to write."""


@dataclass(frozen=True)
class Written:
    files: tuple[Path, ...]
    next_steps: tuple[str, ...] = ()


@dataclass(frozen=True)
class FieldLine:
    """One model field of the skeleton's mapping: its name, its CEL, and whether it needs the provider's name."""

    name: str
    cel: str
    python: str
    note: str = ""


@dataclass(frozen=True)
class Context:
    name: str
    camel: str
    title: str
    auth: str
    schema: str
    variant: str
    module: str
    host: str
    stream: str
    fields: tuple[FieldLine, ...] = field(default=())
    #: ``--webhook``'s verifier kind, "" for none.
    webhook: str = ""

    @property
    def schema_camel(self) -> str:
        return _camel(self.schema)

    @property
    def env(self) -> str:
        return self.name.upper()


def scaffold(
    name: str,
    *,
    auth: str = "api-key",
    data: bool = False,
    webhook: str | None = None,
    directory: Path | None = None,
    schema: str = "task",
    settings: Settings | None = None,
    registered: set[str] | None = None,
) -> Written:
    """Write the skeleton of definition ``name``; ``registered`` is the IDs already taken (default: the
    deployment's registry)."""
    settings = settings or Settings()
    _check_name(name)
    if auth not in AUTHS:
        raise ScaffoldError(f"--auth must be one of {', '.join(AUTHS)}, not {auth!r}")
    if data and auth != "oauth2":
        raise ScaffoldError(
            "a data file declares OAuth 2.0 only (docs/data-definitions.md): drop --data for an "
            f"{auth} definition, or use --auth oauth2"
        )
    if webhook is not None and webhook not in WEBHOOKS:
        raise ScaffoldError(f"--webhook must be one of {', '.join(WEBHOOKS)}, not {webhook!r}")
    if data and webhook is not None:
        raise ScaffoldError(
            "a data file declares no webhooks (docs/data-definitions.md: its connection and streams only): "
            "drop --data to get a package with webhooks.py"
        )
    from ingest.catalog import catalog

    models = catalog()
    if schema not in models:
        raise ScaffoldError(f"--schema {schema!r} is no internal model: one of {', '.join(sorted(models))}")
    taken = registered if registered is not None else _registered(settings)
    if name in taken:
        raise ScaffoldError(f"a definition {name!r} is already registered: pick another name")
    target = _target(name, data=data, directory=directory, settings=settings)
    context = _context(name, auth, schema, models[schema], module=_module(name, target, data), webhook=webhook or "")
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,  # a template naming a value the context lacks is a bug, not a blank
        keep_trailing_newline=True,
        autoescape=False,  # Python, TOML and Markdown, never HTML
    )
    if data:
        text = environment.get_template("data.toml.jinja").render(c=context)
        target.write_text(text, encoding="utf-8")
        loaded = target.parent.resolve() in {Path(d).resolve() for d in settings.definition_dirs()}
        steps = (
            f"next: fill in the TODO(provider) lines of {target}, then",
            "  tether definitions check"
            if loaded
            else f"  TETHER_DEFINITIONS_DIR={target.parent} tether definitions check",
            f"  tether mapping coverage {name} --payloads <recorded answers>",
        )
        return Written((target,), steps)
    target.mkdir(parents=True)
    written = []
    for file in (*PACKAGE_FILES, *([WEBHOOK_FILE] if webhook else [])):
        text = environment.get_template(f"package/{file}.jinja").render(c=context)
        path = target / file
        path.write_text(text, encoding="utf-8")
        written.append(path)
    steps = (
        f"next: fill in the TODO(provider) lines of {target}, then",
        f"  TETHER_DEFINITION_MODULES={context.module} tether definitions check",
        f"  (to ship it: add {context.module!r} to CATALOG in src/definitions/__init__.py)"
        if context.module.startswith("definitions.")
        else f"  ({target.parent} must be on PYTHONPATH)",
        f"  tether mapping coverage {name} --payloads <recorded answers>",
    )
    if webhook:
        steps += (
            "  then the provider's documented example delivery, saved as a file, as the webhook's example:",
            f"  tether definitions record {name} webhook:events --example example.json",
            f"  TETHER_DEFINITION_MODULES={context.module} tether definitions test {name}",
        )
    return Written(tuple(written), steps)


def _check_name(name: str) -> None:
    if not _NAME.match(name) or name.endswith("_") or "__" in name:
        raise ScaffoldError(
            f"{name!r} is not a definition ID: snake_case, a letter first, letters, digits and single underscores"
        )
    if keyword.iskeyword(name) or name in ("definitions", "engine", "ingest", "generated", "test", "tests"):
        raise ScaffoldError(f"{name!r} cannot be a definition ID: it is a Python keyword or a package of Tether's")


def _registered(settings: Settings) -> set[str]:
    from engine.catalog.loading import load_registry

    return {d.id for d in load_registry(settings).definitions()}


def _target(name: str, *, data: bool, directory: Path | None, settings: Settings) -> Path:
    if directory is None:
        if data:
            dirs = settings.definition_dirs()
            if not dirs:
                raise ScaffoldError("a data file goes in a TETHER_DEFINITIONS_DIR folder: set it, or give --dir")
            directory = Path(dirs[0])
        else:
            directory = builtin_dir()
    if not directory.is_dir():
        raise ScaffoldError(f"{directory} is not a folder")
    target = directory / (f"{name}.toml" if data else name)
    taken = [p for p in (target, directory / f"{name}.py", directory / f"{name}.json") if p.exists()]
    if taken:
        raise ScaffoldError(f"{taken[0]} already exists: pick another name (nothing was written)")
    return target


def _module(name: str, target: Path, data: bool) -> str:
    """The import path of the package: ``definitions.<name>`` in the built-in folder, else ``<name>``."""
    if data:
        return ""
    return f"definitions.{name}" if target.parent.resolve() == builtin_dir().resolve() else name


def builtin_dir() -> Path:
    """The built-in definitions' folder, found without importing the package (the engine never imports a
    definition: ``tests/test_import_graph.py``)."""
    spec = importlib.util.find_spec("definitions")
    if spec is None or not spec.submodule_search_locations:
        raise ScaffoldError("the built-in definitions package is not installed: give --dir")
    return Path(next(iter(spec.submodule_search_locations)))


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _context(name: str, auth: str, schema: str, spec: Any, *, module: str, webhook: str = "") -> Context:
    return Context(
        name=name,
        camel=_camel(name),
        title=" ".join(part.capitalize() for part in name.split("_")),
        auth=auth,
        schema=schema,
        variant=name,
        module=module,
        host=name.replace("_", "-"),
        stream=f"{_camel(schema)}Sync",
        fields=tuple(_field_lines(spec)),
        webhook=webhook,
    )


def _field_lines(spec: Any) -> list[FieldLine]:
    """A first mapping: every field of the model read from the payload property of the same name (the provider's
    own names go in by hand; ``tether mapping coverage`` shows each one that never arrives)."""
    lines = []
    fields = spec.model.model_fields
    for name in spec.allowed:
        text = _is_text(fields[name].annotation)
        if name in spec.upsert:
            source = "id" if name == "external_id" else name
            cel = f"string(payload.{source})" if text else f"payload.{source}"
            lines.append(FieldLine(name, cel, f'"{cel}"', "the provider's ID: an upsert key"))
        elif name in spec.required:
            cel = f"payload.{name}"
            lines.append(FieldLine(name, cel, f'"{cel}"', "required"))
        else:
            lines.append(FieldLine(name, _optional(name), f'optional("{name}")'))
    return lines


def _optional(path: str) -> str:
    from engine.kit.celpaths import optional

    return optional(path)


def _is_text(annotation: Any) -> bool:
    return annotation is str or str in get_args(annotation)
