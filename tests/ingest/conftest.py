"""Fixtures of the ingest suite: a registry with the GitHub and test directory definitions, and a pipeline."""

from __future__ import annotations

from typing import Any

import pytest

from definitions.github_app import definition as github_definition
from engine.catalog.registry import Registry
from ingest.pipeline import IngestPipeline
from support.directory import DIRECTORY


@pytest.fixture
def registry() -> Registry:
    registry = Registry()
    registry.register(github_definition)
    registry.register(DIRECTORY)
    return registry


@pytest.fixture
def pipeline(registry: Registry, database: Any) -> IngestPipeline:
    return IngestPipeline(registry, database, batch_size=50)
