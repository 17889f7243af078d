"""Opt-in pytest plugin measuring the suite's memory per test module (docs/benchmarks.md, suite memory and time).

    python -m pytest -p support.memprobe --memprobe=/tmp/probe.log [--memprobe-types] tests/...

After each module (and a full collection) it appends the process's resident set (``VmRSS``), its growth over the
module, the module's seconds and the live threads by name; with ``--memprobe-types`` also the object types whose
count grew most (``gc.get_objects``: slow, for finding what accumulates). Alive event loops and SQLAlchemy engines
are counted too: after the fixes of this section both stay at zero or one between modules.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import re2

_THREAD_SUFFIX = re2.compile(r"[-_]?\d+(_\d+)?$")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("memprobe")
    group.addoption("--memprobe", default=None, help="append per-module RSS, growth, time and threads to this file")
    group.addoption("--memprobe-types", action="store_true", help="also the object types whose count grew most")


class _Probe:
    def __init__(self, out: Path, types: bool) -> None:
        self.out = out
        self.types = types
        self.module: str | None = None
        self.started = time.monotonic()
        self.rss = _rss_mb()
        self.counts: collections.Counter[str] = _counts() if types else collections.Counter()
        self._log(f"=== start rss {self.rss} MB")

    def _log(self, line: str) -> None:
        with self.out.open("a") as file:
            file.write(line + "\n")

    def enter(self, module: str | None) -> None:
        if module == self.module:
            return
        if self.module is not None:
            self._flush()
        self.module = module
        self.started = time.monotonic()

    def _flush(self) -> None:
        gc.collect()
        rss = _rss_mb()
        objects = gc.get_objects()
        from sqlalchemy.engine import Engine

        loops = sum(1 for o in objects if isinstance(o, asyncio.AbstractEventLoop))
        engines = sum(1 for o in objects if isinstance(o, Engine))
        names = collections.Counter(_THREAD_SUFFIX.sub("", t.name) for t in threading.enumerate())
        seconds = time.monotonic() - self.started
        self._log(
            f"{rss:6d} MB {rss - self.rss:+5d} {seconds:7.1f}s  {self.module}  loops={loops} engines={engines} "
            f"threads={sum(names.values())} ({', '.join(f'{k}={v}' for k, v in names.most_common(4))})"
        )
        if self.types:
            counts = _counts(objects)
            grown = counts.copy()
            grown.subtract(self.counts)
            for name, more in grown.most_common(15):
                if more > 50:
                    self._log(f"        {more:+8d} {name} (={counts[name]})")
            self.counts = counts
        del objects
        self.rss = rss

    def finish(self) -> None:
        self.enter(None)
        self._log(f"=== end rss {_rss_mb()} MB")


def _rss_mb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return 0


def _counts(objects: list[Any] | None = None) -> collections.Counter[str]:
    found: collections.Counter[str] = collections.Counter()
    for o in objects if objects is not None else gc.get_objects():
        kind = type(o)
        found[f"{kind.__module__}.{kind.__qualname__}"] += 1
    return found


_probe: list[_Probe] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    out = session.config.getoption("--memprobe")
    if out:
        _probe.append(_Probe(Path(out), bool(session.config.getoption("--memprobe-types"))))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    if _probe:
        _probe[0].enter(item.nodeid.split("::")[0])
    yield


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _probe:
        _probe.pop().finish()
