"""Real ``tether worker`` subprocesses and the Redis they talk to, for the queue suites."""

from __future__ import annotations

import os
import subprocess
import sys

import redis

REDIS_URL = os.environ.get("TETHER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def start_worker(env: dict[str, str], *, threads: int = 2) -> subprocess.Popen[str]:
    """Start ``tether worker`` with ``env`` added to this process's environment; returns once it consumes."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli_workers", "worker", "--threads", str(threads)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the worker is consuming (or has died)
    if "tether worker ready" not in line:
        proc.kill()
        raise AssertionError(f"the worker did not start (exit code {proc.poll()})")
    return proc


def stop_all(procs: list[subprocess.Popen[str]], namespace: str, client: redis.Redis) -> None:
    """Kill the processes a test started (those still running) and drop its Redis namespace."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=20)
    keys = list(client.scan_iter(f"{namespace}:*"))
    if keys:
        client.delete(*keys)
