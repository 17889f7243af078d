"""A JSON log handler on the root logger with the sink ``tether serve``/``worker``/``scheduler`` install
(``engine.processes.install_sink``), for the tests that read what a path logged (issue 23)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from engine.observability.logs import forget_recent_secrets
from engine.processes import install_sink


@contextmanager
def json_log() -> Iterator[io.StringIO]:
    """Capture every record of the process at INFO and up as JSON lines, starting from no remembered secrets."""
    forget_recent_secrets()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    install_sink(handler, "json")
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def json_lines(text: str) -> list[dict[str, object]]:
    """Every non-empty line parsed as JSON (a line that is not JSON fails the test)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]
