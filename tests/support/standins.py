"""What the recordings' stand-ins share (``support.recordings*``): the documented response fixtures as answers, and
loopback admitted by the egress guard while they serve on 127.0.0.1."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.kit.egress import LOOPBACK_ENV
from support.cassette_fixtures import response_fixture
from support.replay import Answer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def fixture(definition: str, name: str) -> dict[str, Any]:
    """``tests/fixtures/<definition>/<name>`` (a one-exchange cassette or JSON) as ``{"status", "headers", "body"}``."""
    return response_fixture(FIXTURES / definition, name)


def answer(definition: str, name: str) -> Answer:
    """That fixture as a stand-in's answer."""
    found = fixture(definition, name)
    return Answer(found["status"], found["body"], found.get("headers") or {})


@contextmanager
def loopback_allowed() -> Iterator[None]:
    """Stand-ins are plain http on 127.0.0.1: the egress guard admits them only with loopback allowed (set before an
    engine is made: custody's revocation reads it from the engine's settings)."""
    before = os.environ.get(LOOPBACK_ENV)
    os.environ[LOOPBACK_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(LOOPBACK_ENV, None)
        else:
            os.environ[LOOPBACK_ENV] = before
