"""A runtime serving the sample definition (``support.sample_definition``) with its operator config set."""

from __future__ import annotations

from typing import Any

import pytest

from engine.custody.crypto import generate_master_key
from engine.runtime import Runtime
from engine.settings import Settings
from support.scratchdb import migrated


def start_sample_runtime(
    monkeypatch: pytest.MonkeyPatch, database_url: str, state_dir: str, *, migrate: bool = False, **settings: Any
) -> Runtime:
    """``Runtime.start`` over ``database_url`` with a fresh master key; ``settings`` are further ``Settings`` fields."""
    monkeypatch.setenv("TETHER_SECRET_MASTER_KEY", generate_master_key())
    monkeypatch.setenv("TETHER_SAMPLE_CLIENT_ID", "sample")
    monkeypatch.setenv("TETHER_SECRET_SAMPLE_CLIENT_SECRET", "sample-secret")
    runtime = Runtime.start(
        Settings(
            database_url=database_url, definition_modules="support.sample_definition", state_dir=state_dir, **settings
        )
    )
    return migrated(runtime) if migrate else runtime
