"""``streamlab``: a provider declared as data (``tests/fixtures/streams/streamlab.toml``) with one stream per
pagination kind, its API on a local HTTP server (``support.stream_server``) at a port fixed for the process, so
the definition can be imported by the runtime (``TETHER_DEFINITION_MODULES=support.stream_definition``)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from definitions.custom_oauth2 import generate, parse_spec
from support.server import free_port

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "streams"
PORT = free_port()
BASE = f"http://127.0.0.1:{PORT}"


def load(base: str = BASE) -> object:
    data = tomllib.loads((FIXTURES / "streamlab.toml").read_text())
    data["apiUrl"] = base
    return parse_spec(data, "streamlab.toml")


SPEC = load()
GENERATED = generate(SPEC)  # type: ignore[arg-type]
definition = GENERATED.definition(category="testing")
