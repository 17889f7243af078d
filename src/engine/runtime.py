"""The runtime: the composition root of one engine process.

``Runtime.start`` loads the engine context (``engine.context``: settings, database, registry, operator config, key
ring) and the runtime builds each service once on top of it, handing each its collaborators: custody gets the
context, the executor gets the context, custody and the queue's ``enqueue``. Only the surfaces (the API, the page,
the CLI and the process runners) hold a runtime; the services below them are handed what they use.
"""

from __future__ import annotations

from functools import cached_property

from engine.custody.tokens import Custody
from engine.queue import worker
from engine.runs.execution import Executor
from engine.services import Services


class Runtime(Services):
    """The engine context plus the services built on it, each built once (on first use)."""

    @cached_property
    def custody(self) -> Custody:
        return Custody(self)

    @cached_property
    def executor(self) -> Executor:
        """The one execution path of operations (``engine.runs.execution``)."""
        return Executor(self, self.custody, enqueue=self._enqueue, enqueue_many=self._enqueue_many)

    def _enqueue(self, run_id: str, delay: float | None, time_limit: float | None) -> None:
        worker.enqueue(run_id, delay=delay, time_limit=time_limit, settings=self.settings)

    def _enqueue_many(self, runs: list[tuple[str, float | None, object]]) -> list[BaseException | None]:
        return worker.enqueue_runs(runs, settings=self.settings)
