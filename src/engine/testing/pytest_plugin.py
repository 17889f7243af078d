"""The standard suite as a pytest plugin: a ``standard_suite`` fixture for any project's definition tests.

Load it from a ``conftest.py`` (``pytest_plugins = ["engine.testing.pytest_plugin"]``) and write, per definition::

    def test_my_definition_passes_the_standard_suite(standard_suite):
        standard_suite.check(definition)             # cassettes in <tether_cassettes>/<definition id>/

``check`` fails the test with every failed check named (``[ingest.pages_to_end] FAIL …``); ``report`` returns the
:class:`~engine.testing.suite.SuiteReport` for a test that wants to assert on it. The cassette root is the ini
option ``tether_cassettes`` (default ``tests/cassettes``, relative to the rootdir).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.authoring.definition import Definition
from engine.testing.suite import SuiteReport, run_suite

__all__ = ["StandardSuite"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("tether_cassettes", "folder with one folder of cassettes per definition", default="tests/cassettes")


@dataclass
class StandardSuite:
    root: Path
    workdir: Path

    def folder(self, definition: Definition) -> Path:
        return self.root / definition.id

    def report(self, definition: Definition, cassettes: str | Path | None = None) -> SuiteReport:
        folder = Path(cassettes) if cassettes is not None else self.folder(definition)
        return run_suite(definition, folder, workdir=self.workdir / definition.id)

    def check(self, definition: Definition, cassettes: str | Path | None = None) -> SuiteReport:
        report = self.report(definition, cassettes)
        report.raise_for_failures()
        return report


@pytest.fixture
def standard_suite(request: pytest.FixtureRequest, tmp_path: Path) -> StandardSuite:
    root = Path(str(request.config.getini("tether_cassettes")))
    if not root.is_absolute():
        root = Path(request.config.rootpath) / root
    return StandardSuite(root, tmp_path)
