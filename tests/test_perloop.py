"""Per-event-loop state is dropped once its loop closes (``engine.perloop``): a long-running worker, and the test
suite, run many loops one after another, and each loop kept alive holds its connections, tasks and clients.

Every value here references its loop (a future, a task, a ``_Hop``), the case a ``WeakKeyDictionary`` keyed by
the loop never frees. Each check closes several loops and then proves, through weak references, that none of them
is still alive once the state has seen a new loop (or was pruned).
"""

from __future__ import annotations

import asyncio
import gc
import weakref

from engine.perloop import PerLoop
from engine.queue import loophop
from engine.runs.heartbeat import Heartbeats
from engine.store.batching import Coalescer

LOOPS = 5


def _alive(refs: list[weakref.ref[asyncio.AbstractEventLoop]]) -> int:
    gc.collect()
    return sum(1 for ref in refs if ref() is not None)


def test_values_of_closed_loops_are_dropped_and_handed_to_on_drop() -> None:
    dropped: list[asyncio.Future[None]] = []
    state: PerLoop[asyncio.Future[None]] = PerLoop(on_drop=dropped.append)
    refs = []
    for _ in range(LOOPS):
        loop = asyncio.new_event_loop()
        refs.append(weakref.ref(loop))
        future = state.setdefault(loop.create_future, loop)
        assert state.get(loop) is future and state.setdefault(loop.create_future, loop) is future
        future.cancel()
        loop.close()
        del loop, future
        assert len(state) <= 1  # the loop closed last waits for the next new loop (or a prune)
    state.prune()
    assert len(state) == 0
    assert len(dropped) == LOOPS
    dropped.clear()
    assert _alive(refs) == 0


def test_an_entry_of_a_loop_collected_unclosed_goes_with_it() -> None:
    state: PerLoop[list[int]] = PerLoop()
    loop = asyncio.new_event_loop()
    state.setdefault(list, loop)
    ref = weakref.ref(loop)
    loop.close()
    del loop
    gc.collect()
    assert ref() is None  # the value does not reference the loop: the weak reference's callback drops the entry
    assert len(state) == 0


def test_a_coalescer_keeps_no_loop_alive() -> None:
    coalescer: Coalescer[int, int] = Coalescer("test-perloop", lambda items: [item * 2 for item in items])
    refs = []

    async def use() -> int:
        refs.append(weakref.ref(asyncio.get_running_loop()))
        return sum(await asyncio.gather(*(coalescer.submit(n) for n in range(10))))

    for _ in range(LOOPS):
        assert asyncio.run(use()) == 90
        assert len(coalescer._states) <= 1
    assert _alive(refs) <= 1
    coalescer._states.prune()
    assert _alive(refs) == 0


def test_heartbeats_keep_no_loop_alive() -> None:
    heartbeats = Heartbeats(lambda run_ids: run_ids, interval=0.01)
    refs = []

    async def run() -> None:
        refs.append(weakref.ref(asyncio.get_running_loop()))
        tracked = heartbeats.track("run-1")
        await asyncio.sleep(0.05)  # the beater task runs (and, once done, still references the loop)
        heartbeats.untrack(tracked)
        await asyncio.sleep(0.03)

    for _ in range(LOOPS):
        asyncio.run(run())
    heartbeats._states.prune()
    assert len(heartbeats._states) == 0
    assert _alive(refs) == 0


def test_the_loop_hop_keeps_no_loop_alive() -> None:
    refs = []
    for _ in range(LOOPS):
        loop = asyncio.new_event_loop()
        refs.append(weakref.ref(loop))
        assert loophop._hop(loop) is loophop._hop(loop)  # a _Hop references its loop
        loop.close()
        del loop
    loophop._hops.prune()
    assert _alive(refs) == 0
