"""``python -m bench events``: outbound event deliveries end to end, outbox to a receiver, through Redis.

``TETHER_BENCH_EVENTS`` (2000) events are written to the outbox in batches of 100 (one transaction each, fanned out
to one endpoint), then one ``tether worker`` process (``BENCH_THREADS``, 16) sends them: the event sweep queues the due
deliveries, the actor claims, signs (Standard Webhooks, HMAC-SHA256) and POSTs each through the egress guard to a
receiver on 127.0.0.1 (uvicorn in a thread of this process, answering 204 without verifying, so the figure is the
sender's). Deliveries/s is ``EVENTS / (last delivered_at - first created_at)``; latency is ``delivered_at -
created_at`` per delivery, which includes waiting for the sweep (``TETHER_EVENT_SWEEP_SECONDS``, 1 s by default).
``worker_cpu_ms_per_delivery`` is the worker process's CPU time over the run divided by the deliveries: what one
costs, however loaded the machine is (the rates above move with other processes' load; this moves much less).

Database: a scratch schema of the local PostgreSQL (``TETHER_BENCH_POSTGRES_URL``), dropped afterwards. Redis:
``TETHER_BENCH_REDIS_URL`` under a private namespace, deleted afterwards. Last line: one JSON object.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._serve import serve as _serve
from bench.webhooks import _cpu_seconds

EVENTS = int(os.environ.get("TETHER_BENCH_EVENTS", "2000"))
THREADS = int(os.environ.get("BENCH_THREADS", "16"))
REDIS_URL = os.environ.get("TETHER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("TETHER_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
ROOT = Path(__file__).resolve().parents[1]


def emit_events(db: Any, count: int, make: Callable[[int], Any], *, batch: int = 100) -> None:
    """``count`` events (``make(i)``: the ``i``-th ``NewEvent``) into the outbox, ``batch`` per transaction (as runs
    finishing would write them), fanned out by ``emit`` to their tenants' endpoints."""
    from engine.events.outbox import emit

    for start in range(0, count, batch):
        with db.engine.begin() as connection:
            emit(connection, [make(i) for i in range(start, min(start + batch, count))])


def wait_delivered(db: Any, expected: int, *, bound: float = 600.0) -> list[Any]:
    """Every ``event_delivery`` row once ``expected`` of them are delivered (or ``bound`` seconds passed)."""
    from sqlmodel import func, select

    from engine.store.tables import EventDelivery

    deadline = time.monotonic() + bound
    # Until every outcome is committed (the receiver counts before that); a count, so the polling does not take the
    # GIL from the receiver in this process.
    count = select(func.count()).select_from(EventDelivery).where(EventDelivery.status == "delivered")
    while time.monotonic() < deadline:
        with db.session() as session:
            if session.exec(count).one() >= expected:
                break
        time.sleep(0.5)
    with db.session() as session:
        return list(session.exec(select(EventDelivery)).all())


def delivery_figures(rows: list[Any]) -> dict[str, Any]:
    """Deliveries/s (first event created to last delivered) and created-to-delivered latencies."""
    from engine.store.tables import EventDeliveryStatus

    delivered = [r for r in rows if r.status == EventDeliveryStatus.delivered and r.delivered_at is not None]
    if not delivered:
        return {"delivered": 0, "deliveries_per_s": 0.0, "latency_p50_s": None, "latency_p99_s": None}
    first = min(r.created_at for r in rows)
    last = max(r.delivered_at for r in delivered)
    latencies = sorted((r.delivered_at - r.created_at).total_seconds() for r in delivered)
    return {
        "delivered": len(delivered),
        "deliveries_per_s": round(len(delivered) / max((last - first).total_seconds(), 1e-9), 1),
        "latency_p50_s": round(statistics.median(latencies), 3),
        "latency_p99_s": round(latencies[max(int(len(latencies) * 0.99) - 1, 0)], 3),
    }


def main() -> None:
    import redis
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from engine.custody.crypto import KeyRing, generate_master_key
    from engine.events import endpoints
    from engine.events.outbox import NewEvent
    from engine.store.database import Database, normalize_url

    received = [0]
    lock = threading.Lock()

    async def hook(request: Request) -> Response:
        await request.body()
        with lock:
            received[0] += 1
        return Response(status_code=204)

    schema = f"tether_bench_{uuid.uuid4().hex[:10]}"
    namespace = f"tether_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(normalize_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(normalize_url(POSTGRES_URL)).update_query_dict({"options": f"-csearch_path={schema}"})
    db_url = url.render_as_string(hide_password=False)
    master = generate_master_key()
    db = Database(db_url)
    worker = None
    try:
        db.upgrade()
        app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
        with _serve(app) as base:
            os.environ["TETHER_ALLOW_LOOPBACK_PROVIDERS"] = "1"
            ring = KeyRing.from_master_key(master)
            endpoints.create(db, ring, "bench", url=f"{base}/hook", event_types=["run.succeeded"])
            env = {
                **os.environ,
                "TETHER_DATABASE_URL": db_url,
                "TETHER_SECRET_MASTER_KEY": master,
                "TETHER_BROKER_URL": REDIS_URL,
                "TETHER_BROKER_NAMESPACE": namespace,
                "TETHER_STATE_DIR": str(ROOT / ".cache" / "bench-events"),
                "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")]),
            }
            worker = subprocess.Popen(
                [sys.executable, "-m", "engine.cli_workers", "worker", "--threads", str(THREADS)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            assert worker.stdout is not None
            if "tether worker ready" not in worker.stdout.readline():
                raise SystemExit("the worker did not start")
            cpu_before = _cpu_seconds(worker.pid)
            emit_events(db, EVENTS, lambda i: NewEvent("bench", "run.succeeded", {"run_id": f"r{i}"}))
            rows = wait_delivered(db, EVENTS)
            worker_cpu = _cpu_seconds(worker.pid) - cpu_before
        result = {"bench": "events", "events": EVENTS, "received": received[0], "threads": THREADS}
        result.update(delivery_figures(rows))
        # The worker's own CPU per delivery: what a delivery costs, whatever else loads the machine (the idle sweep
        # and reaper passes are in it too).
        result["worker_cpu_ms_per_delivery"] = round(1000 * worker_cpu / max(result["delivered"], 1), 2)
        print(
            f"{result['delivered']}/{EVENTS} delivered, {result['deliveries_per_s']} deliveries/s, "
            f"latency p50 {result['latency_p50_s']} s, p99 {result['latency_p99_s']} s, "
            f"worker CPU {result['worker_cpu_ms_per_delivery']} ms per delivery"
        )
        print(json.dumps(result))
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        db.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(f"{namespace}:*"))
        if keys:
            client.delete(*keys)
