"""Metrics of real ``tether worker`` processes: two workers on Redis write to one ``TETHER_METRICS_DIR`` and what
``/metrics`` would answer on that host (a third process's exposition) sums both."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from engine.store.tables import RunStatus

SRC = Path(__file__).resolve().parents[2] / "src"


def exposition(env: dict[str, str]) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    reader = subprocess.run(
        [sys.executable, "-c", "from engine.observability import metrics; print(metrics.exposition().decode())"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert reader.returncode == 0, reader.stderr
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(reader.stdout)
        for sample in family.samples
    }


async def test_two_workers_runs_are_summed_in_one_metrics_directory(ops, tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    ops.env["TETHER_METRICS_DIR"] = str(directory)  # the workers' and the reader's; this process keeps its own
    integration = ops.connect()
    workers = [ops.start_worker(threads=2), ops.start_worker(threads=2)]
    executor = ops.runtime.executor
    echoes = [await executor.dispatch(integration, "Echo", trigger="api", config={"value": str(i)}) for i in range(8)]
    broken = await executor.dispatch(integration, "Broken", trigger="api")
    for run_id in echoes:
        assert (await ops.wait(run_id)).status == RunStatus.succeeded
    assert (await ops.wait(broken)).status == RunStatus.failed
    pids = {int(path.stem.rsplit("_", 1)[1]) for path in directory.glob("counter_*.db")}
    assert {w.pid for w in workers} <= pids  # each worker process writes its own file

    samples = exposition({**ops.env, "PYTHONPATH": os.pathsep.join([str(SRC), ops.env["PYTHONPATH"]])})
    echo = frozenset({"definition": "ops", "operation": "Echo", "outcome": "succeeded"}.items())
    failed = frozenset({"definition": "ops", "operation": "Broken", "outcome": "failed"}.items())
    assert samples[("tether_runs_total", echo)] == 8
    assert samples[("tether_run_duration_seconds_count", echo)] == 8
    assert samples[("tether_runs_total", failed)] == 1
