"""``python -m bench changes``: the change feed's read rate and outbound event throughput beside the ingest rate of
the same run (issue 19).

Three phases, one database (embedded SQLite by default; ``--postgres`` for a scratch schema of the local PostgreSQL,
``TETHER_BENCH_POSTGRES_URL``):

1. **ingest**: ``--records`` Google-Workspace-shaped users (``bench.ingest``'s payloads, definition and CEL mapping)
   through the real ``IngestPipeline`` into the store, pages of ``--page`` per transaction, each upsert recording
   its change: ``ingest_per_s`` is records/s.
2. **feed read**: every change of that ingest read back in order with cursor paging (``after`` = the previous
   page's ``next_after``, ``limit`` 1000), twice: over HTTP from a real ``tether serve`` process (``GET
   /v1/changes`` with a server API key, one keep-alive connection: ``feed_http_per_s``), and through the same
   reader function in this process, no HTTP and no JSON (``engine.api.changes.read_changes``:
   ``feed_reader_per_s``). Both must return exactly the ingested number of changes, in sequence order.
3. **events**: ``--events`` ``records.changed`` events written to the outbox in transactions of 100 and delivered by
   that server's embedded worker (its event sweep, the ``tether.deliver_events`` actor: claim with a lease, sign,
   POST through the egress guard, record) to a receiver on 127.0.0.1 in this process that verifies every delivery's
   Standard Webhooks signature with the ``standardwebhooks`` library and counts each ``webhook-id`` once.
   ``events_per_s`` is deliveries from the first event created to the last delivered (so it includes the sweep's
   interval, as a host would see it); every event must be verified and delivered.

The last line is one JSON object with the figures and ``feed_http_over_ingest``, ``feed_reader_over_ingest`` and
``events_over_ingest``. Other sessions may bench on the same machine: ``flock /tmp/bench.lock python -m bench
changes``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench.events import _serve, delivery_figures, emit_events, wait_delivered
from bench.ingest import BENCH, postgres, run_pipeline, sqlite, users
from bench.webhooks import _free_port

ROOT = Path(__file__).resolve().parents[1]
TENANT = "tenant_bench"
FEED_PAGE = 1000


@contextlib.contextmanager
def tether_serve(database_url: str, master_key: str, state_dir: str) -> Iterator[str]:
    """A real ``tether serve`` process (the embedded default: its worker and event sweep run in it) on a free port."""
    port = _free_port()
    env = {
        **os.environ,
        "TETHER_DATABASE_URL": database_url,
        "TETHER_SECRET_MASTER_KEY": master_key,
        "TETHER_STATE_DIR": state_dir,
        "TETHER_BROKER_URL": "",
        "TETHER_ALLOW_LOOPBACK_PROVIDERS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "serve", "--port", str(port), "--no-access-log", "--no-migrate"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                raise SystemExit("tether serve exited before answering /healthz")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit("tether serve did not answer /healthz within 120 s")
            time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


class VerifyingReceiver:
    """The host's event endpoint: verifies each delivery's signature, records each ``webhook-id`` once."""

    def __init__(self) -> None:
        self.secret = ""
        self.lock = threading.Lock()
        self.verified: set[str] = set()
        self.copies = 0
        self.refused = 0

    async def hook(self, request: Any) -> Any:
        from standardwebhooks import Webhook, WebhookVerificationError
        from starlette.responses import Response

        body = await request.body()
        try:
            Webhook(self.secret).verify(body, dict(request.headers))
        except WebhookVerificationError:
            with self.lock:
                self.refused += 1
            return Response(status_code=400)
        with self.lock:
            self.copies += 1
            self.verified.add(request.headers["webhook-id"])
        return Response(status_code=204)


def read_feed_http(base: str, api_key: str) -> tuple[int, float]:
    """Every change of the tenant over HTTP with cursor paging; returns (changes, seconds)."""
    seen, after, last = 0, 0, 0
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {api_key}"}, timeout=60) as client:
        start = time.perf_counter()
        while True:
            response = client.get("/v1/changes", params={"after": str(after), "limit": str(FEED_PAGE)})
            response.raise_for_status()
            page = response.json()
            for change in page["changes"]:
                assert change["seq"] > last, "the feed went backwards"
                last = change["seq"]
            if not page["changes"]:
                return seen, time.perf_counter() - start
            seen += len(page["changes"])
            after = page["next_after"]


def read_feed_reader(db: Any) -> tuple[int, float]:
    """The same pages through the API's reader function, in this process; returns (changes, seconds)."""
    from engine.api.changes import read_changes

    seen, after = 0, 0
    start = time.perf_counter()
    while True:
        page = read_changes(db, TENANT, after, FEED_PAGE)
        if not page.changes:
            return seen, time.perf_counter() - start
        seen += len(page.changes)
        after = page.next_after


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench changes")
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=2_000)
    parser.add_argument("--page", type=int, default=1000, help="payloads per ingest transaction")
    parser.add_argument("--postgres", action="store_true", help="a scratch schema of the local PostgreSQL")
    if argv is None:  # `python -m bench changes …` leaves the benchmark's name in argv
        argv = [a for a in sys.argv[1:] if a != "changes"]
    args = parser.parse_args(argv)

    from starlette.applications import Starlette
    from starlette.routing import Route

    from engine.api.principal import create_api_key
    from engine.catalog.registry import Registry
    from engine.custody.crypto import KeyRing, generate_master_key
    from engine.events import endpoints
    from engine.events.outbox import records_changed
    from ingest.pipeline import IngestPipeline

    os.environ["TETHER_ALLOW_LOOPBACK_PROVIDERS"] = "1"  # the receiver is on 127.0.0.1 (the endpoint URL check)
    registry = Registry()
    registry.register(BENCH)
    pipeline = IngestPipeline(registry, batch_size=args.page)
    payloads = users(args.records)
    backend = "postgres" if args.postgres else "sqlite"
    database = postgres if args.postgres else sqlite
    master = generate_master_key()
    with database() as db, tempfile.TemporaryDirectory() as state:
        pipeline.db = db
        ingest_s = run_pipeline(pipeline, payloads, args.page, "bench_ingest")
        print(f"{backend}: ingest {args.records / ingest_s:,.0f} records/s ({args.records} records, CEL mapping)")

        reader_n, reader_s = read_feed_reader(db)
        receiver = VerifyingReceiver()
        app = Starlette(routes=[Route("/hook", receiver.hook, methods=["POST"])])
        with tether_serve(db.url, master, state) as base, _serve(app) as receiver_base:
            api_key, _ = create_api_key(db, tenant=TENANT, role="server", name="bench")
            http_n, http_s = read_feed_http(base, api_key)
            assert http_n == reader_n == args.records, (http_n, reader_n, args.records)
            print(
                f"{backend}: feed read {http_n / http_s:,.0f} changes/s over HTTP, "
                f"{reader_n / reader_s:,.0f}/s through the reader in process"
            )
            ring = KeyRing.from_master_key(master)
            url = f"{receiver_base}/hook"
            _, receiver.secret = endpoints.create(db, ring, TENANT, url=url, event_types=["records.changed"])
            window = (0, args.records)
            emit_events(db, args.events, lambda i: records_changed(TENANT, f"run{i}", "bench_ingest", {}, window))
            rows = wait_delivered(db, args.events)
        events = delivery_figures(rows)
        assert events["delivered"] == args.events == len(receiver.verified), (events, len(receiver.verified))
        assert receiver.refused == 0, f"{receiver.refused} deliveries failed verification"
        print(
            f"{backend}: events {events['deliveries_per_s']:,.1f} deliveries/s verified "
            f"({len(receiver.verified)} events, {receiver.copies} copies), "
            f"latency p50 {events['latency_p50_s']} s, p99 {events['latency_p99_s']} s"
        )
    ingest_per_s = args.records / ingest_s
    result = {
        "bench": "changes",
        "backend": backend,
        "records": args.records,
        "events": args.events,
        "ingest_per_s": round(ingest_per_s, 1),
        "feed_http_per_s": round(http_n / http_s, 1),
        "feed_reader_per_s": round(reader_n / reader_s, 1),
        "events_per_s": events["deliveries_per_s"],
        "event_latency_p50_s": events["latency_p50_s"],
        "feed_http_over_ingest": round(http_n / http_s / ingest_per_s, 3),
        "feed_reader_over_ingest": round(reader_n / reader_s / ingest_per_s, 3),
        "events_over_ingest": round(events["deliveries_per_s"] / ingest_per_s, 4),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
