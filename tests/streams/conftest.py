"""The streams suite's provider API: one local server per module on the port ``support.stream_definition`` fixed,
its script and request log cleared before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.stream_definition import PORT
from support.stream_server import ProviderApi, provider_api


@pytest.fixture(scope="module")
def _server() -> Iterator[ProviderApi]:
    with provider_api(PORT) as api:
        yield api


@pytest.fixture
def api(_server: ProviderApi) -> ProviderApi:
    _server.reset()
    return _server
