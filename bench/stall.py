"""What the stall watchdog costs a run (issue 23): ``python -m bench stall [--runs N] [--marks N]``.

A run pays one watchdog (a timer armed on entry, cancelled on exit, a context variable set and reset) and one
``progress.note()`` per provider answer, payload and checkpoint. This measures both on the event loop, and one run's
whole watchdog share for a given number of marks, against a run that does the same awaits without a watchdog. The
last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from engine.runs import progress


async def _one_run(marks: int, watched: bool) -> None:
    """The shape of a run's execution with ``marks`` progress marks: an await per ten marks (a page)."""
    task = asyncio.current_task()
    assert task is not None
    if watched:
        with progress.Watchdog(task, 600.0):
            for i in range(marks):
                progress.note()
                if i % 10 == 0:
                    await asyncio.sleep(0)
    else:
        for i in range(marks):
            if i % 10 == 0:
                await asyncio.sleep(0)


async def _measure(runs: int, marks: int) -> dict[str, float]:
    task = asyncio.current_task()
    assert task is not None
    count = 200_000
    began = time.perf_counter()
    for _ in range(count):
        progress.note()
    outside_ns = (time.perf_counter() - began) / count * 1e9
    with progress.Watchdog(task, 600.0):
        began = time.perf_counter()
        for _ in range(count):
            progress.note()
        inside_ns = (time.perf_counter() - began) / count * 1e9
    began = time.perf_counter()
    for _ in range(runs):
        with progress.Watchdog(task, 600.0):
            pass
    arm_us = (time.perf_counter() - began) / runs * 1e6
    timings = {}
    for watched in (False, True, False, True):  # interleaved, so a load change on the shared machine hits both
        began = time.perf_counter()
        await asyncio.gather(*(_one_run(marks, watched) for _ in range(runs)))
        timings.setdefault(watched, []).append((time.perf_counter() - began) / runs * 1e6)
    plain, watched_us = min(timings[False]), min(timings[True])
    return {
        "note_outside_run_ns": round(outside_ns, 1),
        "note_in_run_ns": round(inside_ns, 1),
        "watchdog_arm_disarm_us": round(arm_us, 2),
        "run_us_without": round(plain, 2),
        "run_us_with": round(watched_us, 2),
        "watchdog_share_of_run_us": round(watched_us - plain, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench stall")
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--marks", type=int, default=100, help="progress marks per run (pages, payloads)")
    args = parser.parse_args(sys.argv[2:])
    figures = asyncio.run(_measure(args.runs, args.marks))
    print(json.dumps({"bench": "stall", "runs": args.runs, "marks_per_run": args.marks, **figures}))


if __name__ == "__main__":
    main()
