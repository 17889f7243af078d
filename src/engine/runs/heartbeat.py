"""Heartbeats of the runs this process executes: one UPDATE per interval for all of them.

The reaper (``Executor.reap_stale``) takes a ``running`` run whose heartbeat stopped for one a dead worker left
behind, so a live worker must keep stamping its runs. Rather than a timer task per run, each event loop has one
beater that, every ``interval`` seconds, stamps every run it tracks in a single statement. The statement only
touches runs still ``running``: a run it does not find was cancelled meanwhile, and the task executing it is
cancelled (the executor turns that into ``run_cancelled``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import anyio.to_thread

from engine.perloop import PerLoop

log = logging.getLogger("tether.heartbeat")

Beat = Callable[[list[str]], Iterable[str]]


@dataclass(eq=False)
class Tracked:
    run_id: str
    task: asyncio.Task[object]
    #: Set when the beater cancelled ``task`` because the run is no longer running.
    cancelled: bool = False


@dataclass
class _LoopState:
    runs: dict[str, Tracked] = field(default_factory=dict)
    beater: asyncio.Task[None] | None = None


class Heartbeats:
    """Tracks the runs being executed on each event loop and stamps them every ``interval`` seconds.

    ``beat(run_ids)`` stamps the runs still running and returns their IDs; it runs in a worker thread.
    """

    def __init__(self, beat: Beat, interval: float) -> None:
        self.beat = beat
        self.interval = interval
        #: Per loop, dropped when it closes: the beater task references its loop even once done (``engine.perloop``).
        self._states: PerLoop[_LoopState] = PerLoop()

    def track(self, run_id: str) -> Tracked:
        """Track the run the current task executes until ``untrack``."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("Heartbeats.track must be called from a task")
        loop = task.get_loop()
        state = self._states.setdefault(_LoopState, loop)
        tracked = Tracked(run_id, task)
        state.runs[run_id] = tracked
        if state.beater is None or state.beater.done():
            state.beater = loop.create_task(self._beat_forever(state), name="tether-heartbeats")
        return tracked

    def untrack(self, tracked: Tracked) -> None:
        state = self._states.get(tracked.task.get_loop())
        if state is not None and state.runs.get(tracked.run_id) is tracked:
            del state.runs[tracked.run_id]

    async def _beat_forever(self, state: _LoopState) -> None:
        while state.runs:
            await asyncio.sleep(self.interval)
            beating = dict(state.runs)
            if not beating:
                break
            try:
                alive = set(await anyio.to_thread.run_sync(self.beat, list(beating)))
            except Exception as exc:  # a missed beat is recovered by the next one; the reaper allows several
                log.warning("heartbeat of %d runs failed: %s", len(beating), type(exc).__name__)
                continue
            for run_id, tracked in beating.items():
                if run_id not in alive and state.runs.get(run_id) is tracked:
                    tracked.cancelled = True
                    tracked.task.cancel()
