"""Subprocess for the multi-process single-flight test: N threads wait for a go-file, then each asks for the
integration's access token once; prints one JSON line with what every thread got (digests, not tokens)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import threading
import time
from pathlib import Path

from engine.runtime import Runtime
from engine.settings import Settings


def main(integration_id: str, go_file: str, threads: int) -> None:
    runtime = Runtime.start(Settings())
    results: list[str] = []

    def call() -> None:
        while not Path(go_file).exists():
            time.sleep(0.005)
        try:
            token = asyncio.run(runtime.custody.get_access_token(integration_id))
            results.append(hashlib.sha256(token.token.encode()).hexdigest())
        except Exception as exc:  # reported to the parent test, which fails on it
            results.append(f"error:{type(exc).__name__}:{getattr(exc, 'code', '')}")

    workers = [threading.Thread(target=call) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
