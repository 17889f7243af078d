"""Built clients are reused per (integration, slot, credential version) within one event loop."""

from __future__ import annotations

import asyncio

from engine.custody.clientcache import ClientCache


class Built:
    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_a_client_is_reused_until_its_credential_version_changes() -> None:
    cache = ClientCache()
    first = cache.get("i1", "Slot", 1, lambda: Built("v1"))
    assert cache.get("i1", "Slot", 1, lambda: Built("again")) is first
    second = cache.get("i1", "Slot", 2, lambda: Built("v2"))
    assert second.name == "v2" and first.closed and len(cache) == 1


def test_each_event_loop_gets_its_own_client_and_a_closed_loop_is_forgotten() -> None:
    cache = ClientCache()

    async def lookup() -> Built:
        return cache.get("i1", "Slot", 1, lambda: Built("loop"))

    outside = cache.get("i1", "Slot", 1, lambda: Built("outside"))
    in_loop = asyncio.run(lookup())  # asyncio.run closes its loop when done
    assert in_loop is not outside and len(cache) == 2
    assert cache.get("i1", "Slot", 1, lambda: Built("again")) is outside
    assert len(cache) == 1  # the ended loop's client went at that lookup


def test_drop_closes_every_client_of_the_integration() -> None:
    cache = ClientCache()
    mine = cache.get("i1", "A", 1, lambda: Built("a"))
    other = cache.get("i2", "A", 1, lambda: Built("b"))
    cache.drop("i1")
    assert mine.closed and not other.closed and len(cache) == 1
