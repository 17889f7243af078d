"""``python -m bench webhooks``: signed webhook deliveries per second against the same server's no-op POST route.

The server is the engine's own app (``create_app``) under uvicorn as ``tether serve --no-access-log`` runs it (1
process; uvloop and httptools; ``tune_gc``), in its own process. It serves ``POST /v1/webhooks/{token}`` on
``TetherApp``'s fast lane (read the raw body, look up the endpoint, verify the GitHub-style HMAC, record the
delivery with the group commit — one multi-row INSERT … ON CONFLICT per batch of concurrent deliveries — acknowledge
after the commit), and two no-op routes: ``POST /noop``, a FastAPI route of the same app placed first in its route
table (the ceiling the issue names: ``noop_per_s``, ``ratio``), and ``POST /noop-lane``, answered before the
framework as the lane is (``noop_lane_per_s``, ``ratio_lane``: what the delivery work costs against bare uvicorn).
``wrk`` on loopback keeps 50 connections busy on each route in turn; deliveries are distinct (every request carries
its own delivery ID, the bodies pre-signed), every answer must be 2xx, and every answered delivery must be recorded.

Hand-off: the server has ``TETHER_BROKER_URL`` set to the local Redis (a private namespace, deleted afterwards), so
every committed batch is one Dramatiq message of row IDs. After the load phase one ``tether worker`` process drains
the queue, and the bench checks that every accepted delivery reached ``processed`` (``processed_per_s``: the drain
rate). ``--process`` runs without a broker instead (the embedded default, as ``tether serve`` starts it: the same
actor on Dramatiq's in-memory ``StubBroker`` and an in-process worker), and checks, once the load phase is over, that
every accepted delivery reached ``processed`` (``processed_after_s``: how long the server took to finish them).
Database: a scratch schema of the local PostgreSQL (``--sqlite`` for a SQLite file). The last line is one JSON
object. Other sessions may bench on the same machine: run it as ``flock /tmp/bench.lock python -m bench webhooks``.
Needs ``wrk`` (Debian: ``apt-get install wrk``).

Options (``python -m bench webhooks …``): ``--seconds N`` per phase, ``--no-drain``, ``--no-gc-tuning``, ``--http``
and ``--loop`` (uvicorn's, to compare h11 or asyncio), ``--trace`` (the server's own timings of requests, commits,
loop lag and collections: ``bench._servertrace``), ``BENCH_CPROFILE=DIR`` (cProfile of each server's event-loop
thread, ``DIR/{off,default,always_on,main}.prof``), ``BENCH_THREAD_CPU=DIR`` (each server thread's CPU seconds
at its end, ``DIR/{side}.json``), ``--py-spy OUT`` (sample the server during the delivery phase;
``PY_SPY`` names the binary, ``PY_SPY_MODE`` its sampling flags).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response

from engine import Definition, EndpointSecret, EventContext, Header, HmacSha256, Payload, Webhook, WebhookEvent

CONCURRENCY = 50
POSTGRES_URL = os.environ.get("TETHER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TETHER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parents[1]
#: Worker threads of the draining ``tether worker`` (each message holds a batch of deliveries).
WORKER_THREADS = int(os.environ.get("BENCH_WORKER_THREADS", "4"))
WRK = shutil.which("wrk")
#: wrk threads (its event loops; each drives CONCURRENCY / threads connections).
WRK_THREADS = int(os.environ.get("BENCH_WRK_THREADS", "2"))


class Pushed(WebhookEvent):
    match = "push"

    async def handle(self, ctx: EventContext) -> AsyncIterator[Payload]:
        return
        yield


class BenchHooks(Webhook):
    name = "events"
    verifier = HmacSha256(header="X-Hub-Signature-256", prefix="sha256=", secret=EndpointSecret())
    event_type = Header("X-GitHub-Event")
    delivery_id = Header("X-GitHub-Delivery")
    events = (Pushed,)


definition = Definition(id="benchhooks", name="Bench hooks", description="Webhook benchmark.", webhooks=(BenchHooks,))


# -- server side -----------------------------------------------------------------------------------------------


def build_app(database_url: str) -> FastAPI:
    """The engine's own app (``create_app``: every router and middleware ``tether serve`` has) plus the no-op
    route, placed first so that routing costs it as little as possible: the highest ceiling."""
    from engine.api import create_app
    from engine.catalog.registry import Registry
    from engine.runtime import Runtime
    from engine.settings import Settings

    registry = Registry()
    registry.register(definition)
    runtime = Runtime.start(Settings(database_url=database_url), registry=registry)
    app = create_app(runtime)

    @app.post("/noop")
    async def noop(request: Request) -> Response:
        await request.body()
        return Response(b'{"status":"ok"}', media_type="application/json")

    app.router.routes.insert(0, app.router.routes.pop())

    @app.get("/bench-stats")
    async def stats() -> dict[str, int]:
        recorder = getattr(app.state, "webhook_recorder", None)
        return {"batches": recorder.batches, "items": recorder.items} if recorder else {"batches": 0, "items": 0}

    return app


class LaneNoop:
    """``POST /noop-lane`` answered in front of the app, where ``TetherApp`` serves deliveries (its fast lane):
    the ceiling of a route that, like the lane, passes no framework code."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/noop-lane":
            await self.app(scope, receive, send)
            return
        while (await receive()).get("more_body"):
            pass
        body = b'{"status":"ok"}'
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def serve() -> None:
    """The server process: uvicorn as ``tether serve --no-access-log`` runs it (``BENCH_HTTP`` and ``BENCH_LOOP``
    override the HTTP parser and the event loop it picks, ``auto``: httptools and uvloop)."""
    import uvicorn

    from engine.observability import tracing
    from engine.settings import Settings

    # As ``tether serve`` does, before the app: on only when OTEL_EXPORTER_OTLP_ENDPOINT or TETHER_TRACE_FILE is set.
    tracing.configure(Settings(), service="tether-server")
    app: Any = build_app(os.environ["BENCH_DATABASE_URL"])
    runtime = app.state.runtime
    if not runtime.settings.broker_url:
        from engine.processes import start_embedded

        start_embedded(runtime)  # as ``tether serve`` does without a broker: deliveries are processed in-process
    if os.environ.get("BENCH_TRACE") == "1":
        from bench import _servertrace

        app = _servertrace.install(app)
    app = LaneNoop(app)
    if os.environ.get("BENCH_GC_TUNING") == "1":
        from engine.processes import tune_gc

        tune_gc()  # as ``tether serve`` does
    if os.environ.get("BENCH_THREAD_CPU"):  # a directory: each thread's CPU seconds when the server stops
        import signal

        def threads_cpu(*_: Any) -> None:
            rows = {}
            for task in Path("/proc/self/task").iterdir():
                name = (task / "comm").read_text().strip()
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                rows[f"{name}/{task.name}"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            side = os.environ.get("BENCH_SIDE", "main")
            (Path(os.environ["BENCH_THREAD_CPU"]) / f"{side}.json").write_text(json.dumps(rows))
            sys.exit(0)

        signal.signal(signal.SIGTERM, threads_cpu)
    if os.environ.get("BENCH_CPROFILE"):  # a directory: the event loop's thread profiled, one file per server
        import cProfile
        import signal

        profile = cProfile.Profile()

        def dump(*_: Any) -> None:  # uvicorn re-raises the SIGTERM it stopped on, once it has stopped
            profile.disable()
            profile.dump_stats(str(Path(os.environ["BENCH_CPROFILE"]) / f"{os.environ.get('BENCH_SIDE', 'main')}.prof"))
            sys.exit(0)

        signal.signal(signal.SIGTERM, dump)
        profile.enable()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(os.environ["BENCH_PORT"]),
        log_level="warning",
        access_log=False,
        http=os.environ.get("BENCH_HTTP", "auto"),
        loop=os.environ.get("BENCH_LOOP", "auto"),
    )


# -- load generator ----------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wrk(base: str, lua: str, seconds: int) -> tuple[float, int, float, float, float, float]:
    """Drive the server with ``wrk`` (C, Debian's package) for ``seconds``: requests/s, requests, p50, p99, p99.9
    and max (ms).

    wrk costs far less per request than a Python client, so on a small machine it measures the server, not the
    load generator. Any non-2xx answer fails the bench.
    """
    import re

    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    try:
        out = subprocess.run(
            [WRK, f"-t{WRK_THREADS}", f"-c{CONCURRENCY}", f"-d{seconds}s", "--latency", "-s", script.name, base],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if errors:
        raise RuntimeError(f"wrk saw {errors.group(1)} error responses: {out[-400:]}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]

    def percentile(label: str) -> float:
        value, unit = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)\b", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    p999, worst = (int(v) / 1000 for v in re.search(r"tail: (\d+) (\d+)", out).groups())  # type: ignore[union-attr]
    return rate, requests, percentile("50"), percentile("99"), p999, worst


#: Appended to every wrk script: the tail beyond --latency's p99 (microseconds).
_TAIL = """
done = function(summary, latency, requests)
  io.write(string.format("tail: %d %d\\n", latency:percentile(99.9), latency.max))
end
"""


def _noop_script(host: str, path: str, body: bytes) -> str:
    return (
        _TAIL
        + f"""request = function()
  return wrk.format("POST", {json.dumps(path)}, {{["Host"] = {json.dumps(host)},
    ["Content-Type"] = "application/json"}}, {json.dumps(body.decode())})
end
"""
    )


def _delivery_script(host: str, path: str, signed: list[tuple[bytes, str]]) -> str:
    """A wrk script posting pre-signed bodies (Lua cannot compute the HMAC) round-robin, each request with a
    delivery ID of its own (``X-GitHub-Delivery`` is not signed; a thread number keeps the two threads apart), so
    every request is a new delivery, however many the run sends."""
    data = ",\n".join(f"{{{json.dumps(body.decode())}, {json.dumps(sig)}}}" for body, sig in signed)
    return (
        _TAIL
        + f"""local data = {{{data}}}
local threads = 0
setup = function(thread) thread:set("tid", threads); threads = threads + 1 end
local n = 0
request = function()
  n = n + 1
  local d = data[n % #data + 1]
  return wrk.format("POST", {json.dumps(path)}, {{["Host"] = {json.dumps(host)},
    ["Content-Type"] = "application/json", ["X-GitHub-Event"] = "push", ["X-Hub-Signature-256"] = d[2],
    ["X-GitHub-Delivery"] = "bench-" .. tid .. "-" .. n}}, d[1])
end
"""
    )


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _postgres_cpu_seconds() -> float:
    """User + system CPU time of every ``postgres`` process on this host so far (Linux ``/proc``; 0 when none is
    visible): the database's share of the drain, which runs on the same 2 cores."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended meanwhile
            continue
        if text[text.index("(") + 1 : text.rindex(")")] != "postgres":
            continue
        fields = text.rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _py_spy(pid: int, out: str, seconds: int, *, mode: str | None = None) -> subprocess.Popen[bytes]:
    """py-spy (``PY_SPY``, else on ``PATH``) sampling the threads holding the GIL (``mode``, default ``PY_SPY_MODE``
    or ``--gil``): where the server's one core goes."""
    exe = os.environ.get("PY_SPY") or shutil.which("py-spy") or "py-spy"
    # e.g. "--idle --threads" for every thread's wall time
    flags = (mode or os.environ.get("PY_SPY_MODE", "--gil")).split()
    command = [exe, "record", *flags, "-f", "raw", "-r", "200", "-d", str(seconds), "-o", out, "--pid", str(pid)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _pg_sessions(url: str) -> int:
    """Sessions PostgreSQL has started so far in this database (``pg_stat_database``; -1 on SQLite): how many
    connections were opened, which a pool too small for the concurrency keeps closing and reopening."""
    if not url.startswith("postgresql"):
        return -1
    from sqlalchemy import create_engine, text

    engine = create_engine(url, poolclass=__import__("sqlalchemy.pool", fromlist=["NullPool"]).NullPool)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    text("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
                ).scalar_one()
            )
    finally:
        engine.dispose()


def _drain(
    url: str, env: dict[str, str], expected: int, *, py_spy: str | None = None
) -> tuple[float, dict[str, int], float]:
    """Start one ``tether worker`` and wait until ``expected`` deliveries are final; (deliveries/s, statuses, the
    worker's CPU µs per delivery). ``py_spy``: sample the worker (every thread, idle included) into this file."""
    from sqlalchemy import func
    from sqlmodel import select

    from engine.store.database import Database
    from engine.store.tables import DeliveryStatus, WebhookDelivery

    db = Database(url)
    worker = subprocess.Popen(
        [sys.executable, "-m", "engine.cli_workers", "worker", "--threads", str(WORKER_THREADS)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert worker.stdout is not None
        assert "ready" in worker.stdout.readline(), f"the worker did not start ({worker.poll()})"
        started, cpu, sessions = time.perf_counter(), _cpu_seconds(worker.pid), _pg_sessions(url)
        database_cpu = _postgres_cpu_seconds()
        spy = _py_spy(worker.pid, py_spy, 30, mode="--idle --threads") if py_spy else None
        deadline = time.monotonic() + 600
        while True:
            with db.session() as session:
                counts = dict(
                    session.exec(
                        select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)  # type: ignore[call-overload]
                    ).all()
                )
            final = sum(n for status, n in counts.items() if status != DeliveryStatus.received)
            if final >= expected or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
        cpu = _cpu_seconds(worker.pid) - cpu
        database_cpu = _postgres_cpu_seconds() - database_cpu
        sessions = _pg_sessions(url) - sessions if sessions >= 0 else -1
        if spy is not None:
            spy.send_signal(__import__("signal").SIGINT)  # py-spy writes its samples on SIGINT, not on SIGTERM
            spy.wait(timeout=30)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        db.dispose()
    print(
        f"drain: {WORKER_THREADS} threads; the worker used {cpu / max(final, 1) * 1e6:.0f} µs of CPU per delivery"
        + (f" and opened {sessions} database sessions" if sessions >= 0 else "")
        + (f"; PostgreSQL used {database_cpu / max(final, 1) * 1e6:.0f} µs" if database_cpu > 0 else ""),
        file=sys.stderr,
    )
    return final / elapsed, {str(k): int(v) for k, v in counts.items()}, cpu / max(final, 1) * 1e6


def _statuses(runtime: Any) -> dict[str, int]:
    from sqlalchemy import func
    from sqlmodel import select

    from engine.store.tables import WebhookDelivery

    with runtime.db.session() as session:
        rows = session.exec(select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)).all()
    return {str(status): int(n) for status, n in rows}


def _wait_processed(runtime: Any, bound: float = 300.0) -> float:
    """Seconds until no delivery is left ``received`` (the embedded worker finishing what the load phase recorded);
    the bound guards against a hang."""
    start = time.monotonic()
    while _statuses(runtime).get("received", 0) and time.monotonic() - start < bound:
        time.sleep(0.1)
    return time.monotonic() - start


def _start_server(server_env: dict[str, str], port: int) -> tuple[subprocess.Popen[bytes], str]:
    """The server process (``serve``), once it answers."""
    server = subprocess.Popen([sys.executable, "-c", "from bench.webhooks import serve; serve()"], env=server_env)
    base = f"http://127.0.0.1:{port}"
    for _ in range(400):
        try:
            httpx.post(base + "/noop", content=b"{}")
            break
        except httpx.TransportError:
            time.sleep(0.05)
    return server, base


class Collector:
    """A local OTLP/HTTP trace collector (``POST /v1/traces``, protobuf) in a thread of the bench: it parses each
    export with opentelemetry-proto's own message and counts the spans, so a run with tracing on proves the spans
    left the processes, at the cost a real collector's receiver would make the exporters pay (one HTTP round trip
    per batch)."""

    def __init__(self) -> None:
        import http.server
        import threading

        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        self.spans = self.requests = 0
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if self.headers.get("content-encoding") == "gzip":
                    import gzip

                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest.FromString(body)
                collector.requests += 1
                collector.spans += sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:  # quiet
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, name="bench-otlp", daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _observability_env(
    collector: Collector, metrics_dir: Path, observe: str = "both", sampler: str | None = None
) -> dict[str, str]:
    """Tracing (OTLP over HTTP to ``collector``, the SDK's batch processor) and multiprocess metrics
    (``TETHER_METRICS_DIR``) on, for the server and the worker alike; ``observe``: ``both``, ``tracing`` or
    ``metrics`` alone (to tell their costs apart). ``sampler``: an ``OTEL_TRACES_SAMPLER`` (``always_on``: every
    span) or ``default`` (the variable unset: the engine's default sampler, what a deployment runs unless it names
    one); ``None``: the bench's environment's ``OTEL_TRACES_SAMPLER`` if set, else the default."""
    metrics_dir.mkdir(parents=True, exist_ok=True)
    if observe == "none":  # the control: a second server and drain with nothing on (the bench's order effect)
        return {}
    if observe == "metrics":
        return {"TETHER_METRICS_DIR": str(metrics_dir)}
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url}
    chosen = sampler if sampler is not None else os.environ.get("OTEL_TRACES_SAMPLER", "default")
    if chosen != "default":
        env["OTEL_TRACES_SAMPLER"] = chosen
    if observe == "both":
        env["TETHER_METRICS_DIR"] = str(metrics_dir)
    return env


def _sampler_label(env: dict[str, str]) -> str:
    """The sampler a traced process of ``env`` runs, as the report names it."""
    from engine.observability.tracing import DEFAULT_SAMPLE_RATIO

    if "OTEL_EXPORTER_OTLP_ENDPOINT" not in env:
        return "none"
    if "OTEL_TRACES_SAMPLER" not in env:
        return f"default (parentbased_traceidratio {DEFAULT_SAMPLE_RATIO})"
    arg = os.environ.get("OTEL_TRACES_SAMPLER_ARG") if "ratio" in env["OTEL_TRACES_SAMPLER"] else None
    return env["OTEL_TRACES_SAMPLER"] + (f":{arg}" if arg else "")


def _metric_total(metrics_dir: Path, name: str, **labels: str) -> float:
    """A counter's total over every process that wrote samples to ``metrics_dir`` (prometheus-client's own
    multiprocess reader)."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(metrics_dir))
    return sum(
        sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def _children_cpu_seconds(pid: int) -> float:
    """CPU time so far of the live child processes of ``pid`` (the span exporter process a traced server starts:
    ``engine.observability.span_shipping``)."""
    total = 0.0
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in children.read_text().split():
            try:
                total += _cpu_seconds(int(child))
            except (FileNotFoundError, ProcessLookupError):
                continue  # it ended meanwhile
    return total


def _phase(server: subprocess.Popen[bytes], base: str, lua: str, seconds: int) -> dict[str, float]:
    """One wrk phase; its rate, request count, latencies, the server's CPU per request (µs) and its child
    processes' (``children_cpu_us``)."""
    cpu = _cpu_seconds(server.pid)
    children = _children_cpu_seconds(server.pid)
    rate, requests, p50, p99, p999, worst = _wrk(base, lua, seconds)
    return {
        "children_cpu_us": (_children_cpu_seconds(server.pid) - children) / max(requests, 1) * 1e6,
        "rate": rate,
        "requests": requests,
        "p50": p50,
        "p99": p99,
        "p999": p999,
        "max": worst,
        "cpu_us": (_cpu_seconds(server.pid) - cpu) / max(requests, 1) * 1e6,
    }


def _paired(
    args: argparse.Namespace, server_env: dict[str, str], path: str, bodies: list[tuple[bytes, str]], tmp: Path
) -> dict[str, Any]:
    """Servers side by side, one without tracing and metrics and one observed (``--observe``) per sampler of
    ``--samplers``, and ``--obs-pairs`` rounds of a delivery phase on each in turn (the order rotating): each
    round's ratio compares phases seconds apart, where the one-shot ``obs_ratio`` compares phases a minute apart on
    a machine whose load other sessions change. ``obs_ratio_paired`` is the first sampler's median (``default``:
    what a deployment that names no sampler runs), ``obs_ratio_paired_by_sampler`` every one's."""
    import statistics

    collector = Collector()
    samplers = [name for name in args.samplers.split(",") if name] if args.observe in ("both", "tracing") else ["-"]
    servers = []
    try:
        sides = [("off", {})] + [
            (name, _observability_env(collector, tmp / f"pair-metrics-{i}", args.observe, name))
            for i, name in enumerate(samplers)
        ]
        for name, extra in sides:
            port = _free_port()
            server, base = _start_server({**server_env, **extra, "BENCH_PORT": str(port), "BENCH_SIDE": name}, port)
            servers.append((name, server, base, f"127.0.0.1:{port}"))
            _wrk(base, _delivery_script(f"127.0.0.1:{port}", path, bodies).replace('"bench-"', f'"pw{name}-"'), 2)
        labels = {name: _sampler_label(extra) for name, extra in sides}
        rates: dict[str, list[float]] = {name: [] for name, _ in sides}
        cpu: dict[str, list[float]] = {name: [] for name, _ in sides}
        exporter: dict[str, list[float]] = {name: [] for name, _ in sides}
        for round_ in range(args.obs_pairs):
            shift = round_ % len(servers)
            for name, server, base, host in servers[shift:] + servers[:shift]:
                script = _delivery_script(host, path, bodies).replace('"bench-"', f'"p{round_}{name}-"')
                phase = _phase(server, base, script, args.seconds)
                rates[name].append(phase["rate"])
                cpu[name].append(phase["cpu_us"])
                exporter[name].append(phase["children_cpu_us"])
    finally:
        for _, server, _, _ in servers:
            server.terminate()
            server.wait(timeout=30)
        collector.close()
    ratios = {
        name: [round(on / off, 3) for off, on in zip(rates["off"], rates[name], strict=True)] for name in samplers
    }
    return {
        "obs_pair_rates": {name: [round(r) for r in values] for name, values in rates.items()},
        "obs_pair_cpu_us": {name: [round(c) for c in values] for name, values in cpu.items()},
        # The span exporter process's (TETHER_TRACE_EXPORT=process), per delivery of its server.
        "obs_pair_exporter_cpu_us": {name: [round(c) for c in exporter[name]] for name in samplers},
        "obs_pair_ratios": ratios,
        "obs_pair_samplers": {name: labels[name] for name in samplers},
        "obs_ratio_paired": statistics.median(ratios[samplers[0]]),
        "obs_ratio_paired_by_sampler": {name: statistics.median(values) for name, values in ratios.items()},
        "obs_pair_spans": collector.spans,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench webhooks")
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument("--process", action="store_true", help="no broker: the server's embedded worker processes")
    parser.add_argument("--seconds", type=int, default=10, help="duration of each phase")
    parser.add_argument("--no-drain", action="store_true", help="skip the worker phase")
    parser.add_argument(
        "--no-gc-tuning",
        dest="gc_tuning",
        action="store_false",
        help="skip the garbage-collector tuning that tether serve does after start-up (engine.process.tune_gc)",
    )
    parser.add_argument("--http", default="auto", help="uvicorn's HTTP implementation (auto, h11, httptools)")
    parser.add_argument("--loop", default="auto", help="uvicorn's event loop (auto, asyncio, uvloop)")
    parser.add_argument("--trace", action="store_true", help="time the server's parts (bench._servertrace)")
    parser.add_argument("--py-spy", metavar="OUT", help="py-spy the server (raw) in the delivery phase")
    parser.add_argument("--py-spy-worker", metavar="OUT", help="py-spy the draining worker (raw, every thread)")
    parser.add_argument("--py-spy-observed", metavar="OUT", help="py-spy the server of the observed delivery phase")
    parser.add_argument(
        "--observe",
        choices=("both", "tracing", "metrics", "none"),
        default="both",
        help="what --observability both turns on",
    )
    parser.add_argument(
        "--observability",
        choices=("off", "both"),
        default="off",
        help="both: run the delivery phase and the drain again with tracing (OTLP to a local collector) and metrics "
        "(TETHER_METRICS_DIR) on, and report obs_ratio / obs_drain_ratio (on ÷ off)",
    )
    parser.add_argument(
        "--obs-pairs",
        type=int,
        default=0,
        help="N: then servers side by side, one with nothing on and one observed (--observe) per --samplers, N "
        "rounds of a delivery phase on each; obs_pair_ratios and their medians (robust to the load drifting)",
    )
    parser.add_argument(
        "--samplers",
        default="default,always_on",
        help="the observed servers of --obs-pairs, by OTEL_TRACES_SAMPLER (default: the variable unset, the "
        "engine's default sampler; always_on: every span), comma-separated; the first gives obs_ratio_paired",
    )
    args, _ = parser.parse_known_args(sys.argv[2:] if sys.argv[1:2] == ["webhooks"] else sys.argv[1:])
    if WRK is None:
        raise SystemExit("python -m bench webhooks needs wrk on PATH (Debian: apt-get install wrk)")

    import redis
    from sqlalchemy import create_engine, func, text
    from sqlalchemy.engine import make_url
    from sqlmodel import select

    from engine.catalog.registry import Registry
    from engine.custody.crypto import generate_master_key
    from engine.runtime import Runtime
    from engine.settings import Settings
    from engine.store.database import Database, normalize_url
    from engine.store.tables import Integration, IntegrationStatus, WebhookDelivery, WebhookEndpoint
    from engine.webhooks.endpoints import ensure_endpoints
    from engine.webhooks.targets import endpoint_secret

    os.environ["TETHER_SECRET_MASTER_KEY"] = generate_master_key()
    tmp = tempfile.mkdtemp(prefix="bench-webhooks-")
    schema = f"bench_webhooks_{uuid.uuid4().hex[:8]}"
    namespace = f"bench_webhooks_{uuid.uuid4().hex[:8]}"
    broker = "" if args.process else REDIS_URL
    admin = None
    if args.sqlite:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
    else:
        admin = create_engine(normalize_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = (
            make_url(normalize_url(POSTGRES_URL))
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    env = {
        # The sampler is the observed processes' own (``_observability_env``), never inherited by the others.
        **{key: value for key, value in os.environ.items() if key != "OTEL_TRACES_SAMPLER"},
        "TETHER_DATABASE_URL": url,
        "TETHER_STATE_DIR": tmp,
        "TETHER_BROKER_URL": broker,
        "TETHER_BROKER_NAMESPACE": namespace,
        "TETHER_DEFINITION_MODULES": "bench.webhooks",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    server = None
    client = redis.Redis.from_url(REDIS_URL)
    try:
        Database(url).upgrade()
        registry = Registry()
        registry.register(definition)
        runtime = Runtime.start(Settings(database_url=url, state_dir=tmp), registry=registry)
        integration = Integration(
            tenant_id="t", owner_id="o", definition_id="benchhooks", status=IntegrationStatus.connected
        )
        with runtime.db.session() as session:
            session.add(integration)
        [endpoint] = asyncio.run(ensure_endpoints(runtime, integration))
        with runtime.db.session() as session:
            secret = endpoint_secret(runtime, session.get_one(WebhookEndpoint, endpoint.id)) or ""
        path = "/v1/webhooks/" + endpoint.url.rsplit("/", 1)[1]

        port = _free_port()
        server_env = {
            **env,
            "BENCH_PORT": str(port),
            "BENCH_DATABASE_URL": url,
            "BENCH_GC_TUNING": "1" if args.gc_tuning else "0",
            "BENCH_HTTP": args.http,
            "BENCH_LOOP": args.loop,
            "BENCH_TRACE": "1" if args.trace else "0",
        }
        server, base = _start_server(server_env, port)

        def signed(i: int) -> tuple[bytes, str]:
            body = json.dumps({"ref": "refs/heads/main", "n": i, "pad": "x" * 600}).encode()
            return body, "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()

        bodies = [signed(i) for i in range(1000)]
        host = f"127.0.0.1:{port}"
        noop_body = bodies[0][0]
        # Warm-up: the endpoint cache, the statements prepared on the recording connection, the route tables.
        _wrk(base, _delivery_script(host, path, bodies).replace('"bench-"', '"warm-"'), 2)
        _wrk(base, _noop_script(host, "/noop", noop_body), 1)

        noop = _phase(server, base, _noop_script(host, "/noop", noop_body), args.seconds)
        lane = _phase(server, base, _noop_script(host, "/noop-lane", noop_body), args.seconds)
        with runtime.db.session() as session:
            recorded_before = session.exec(select(func.count()).select_from(WebhookDelivery)).one()
        before = httpx.get(base + "/bench-stats").json()
        if args.trace:
            httpx.post(base + "/bench-trace/reset")
        spy = _py_spy(server.pid, args.py_spy, args.seconds) if args.py_spy else None
        hooks = _phase(server, base, _delivery_script(host, path, bodies), args.seconds)
        if spy is not None:
            spy.wait(timeout=60)
        if args.trace:
            print("server trace:", json.dumps(httpx.get(base + "/bench-trace").json()), file=sys.stderr)
        after = httpx.get(base + "/bench-stats").json()
        batches = max(1, after["batches"] - before["batches"])
        processed_after = _wait_processed(runtime) if args.process else None
        server.terminate()  # after the requests wrk left in flight (answered to nobody, but recorded)
        server.wait(timeout=30)
        server = None
        with runtime.db.session() as session:
            accepted = session.exec(select(func.count()).select_from(WebhookDelivery)).one()
        new = accepted - recorded_before
        if not hooks["requests"] <= new <= hooks["requests"] + CONCURRENCY:
            raise RuntimeError(f"{hooks['requests']} deliveries answered but {new} recorded")
        result: dict[str, Any] = {
            "deliveries_per_s": round(hooks["rate"], 1),
            "noop_per_s": round(noop["rate"], 1),
            "ratio": round(hooks["rate"] / noop["rate"], 3),
            "p50_ms": round(hooks["p50"], 2),
            "p99_ms": round(hooks["p99"], 2),
            "concurrency": CONCURRENCY,
            "noop_lane_per_s": round(lane["rate"], 1),
            "ratio_lane": round(hooks["rate"] / lane["rate"], 3),
            "noop_p50_ms": round(noop["p50"], 2),
            "noop_p99_ms": round(noop["p99"], 2),
            "noop_lane_p99_ms": round(lane["p99"], 2),
            "p999_ms": round(hooks["p999"], 2),
            "max_ms": round(hooks["max"], 2),
            "mean_batch": round((after["items"] - before["items"]) / batches, 1),
            "server_cpu_us": {
                "noop": round(noop["cpu_us"]),
                "noop_lane": round(lane["cpu_us"]),
                "delivery": round(hooks["cpu_us"]),
            },
            "accepted": accepted,
        }
        if processed_after is not None:
            result["processed_after_s"] = round(processed_after, 2)
            result["statuses"] = _statuses(runtime)
            if set(result["statuses"]) != {"processed"}:
                raise RuntimeError(f"not every accepted delivery was processed: {result['statuses']}")
        if not args.process:
            queued = client.llen(f"{namespace}:tether")
            print(f"{accepted} deliveries recorded; {queued} messages queued", file=sys.stderr)
        if not args.process and not args.no_drain:
            # The queue's side: one worker process drains what the load phase handed off.
            drain_rate, statuses, worker_cpu = _drain(url, env, accepted, py_spy=args.py_spy_worker)
            result["processed_per_s"] = round(drain_rate, 1)
            # The measure: what one worker process keeps up with of what one server process accepts.
            result["drain_ratio"] = round(drain_rate / hooks["rate"], 3)
            result["worker_cpu_us"] = round(worker_cpu)
            result["statuses"] = statuses
            if statuses.get("processed", 0) != accepted:
                raise RuntimeError(f"not every accepted delivery was processed: {statuses} of {accepted}")
        if args.observability == "both" and not args.process and not args.no_drain:
            # The same delivery phase and drain again, with tracing and metrics on in both processes.
            collector = Collector()
            metrics_dir = Path(tmp) / "metrics"
            port = _free_port()
            observed_env = {
                **server_env,
                **_observability_env(collector, metrics_dir, args.observe),
                "BENCH_PORT": str(port),
            }
            server, base = _start_server(observed_env, port)
            host = f"127.0.0.1:{port}"
            _wrk(base, _delivery_script(host, path, bodies).replace('"bench-"', '"warm2-"'), 2)
            with runtime.db.session() as session:
                recorded_before = session.exec(select(func.count()).select_from(WebhookDelivery)).one()
            spy = _py_spy(server.pid, args.py_spy_observed, args.seconds) if args.py_spy_observed else None
            observed = _phase(
                server, base, _delivery_script(host, path, bodies).replace('"bench-"', '"obs-"'), args.seconds
            )
            if spy is not None:
                spy.wait(timeout=60)
            server.terminate()
            server.wait(timeout=30)
            server = None
            with runtime.db.session() as session:
                total = session.exec(select(func.count()).select_from(WebhookDelivery)).one()
            worker_env = {**env, **_observability_env(collector, metrics_dir, args.observe)}
            drain_on, statuses, worker_cpu_on = _drain(url, worker_env, total)
            if statuses.get("processed", 0) != total:
                raise RuntimeError(f"not every accepted delivery was processed: {statuses} of {total}")
            time.sleep(1.0)  # the worker's last span batch, sent as it stopped
            collector.close()
            result["observability"] = {
                "deliveries_per_s": round(observed["rate"], 1),
                "processed_per_s": round(drain_on, 1),
                "server_cpu_us": round(observed["cpu_us"]),
                # The span exporter process of TETHER_TRACE_EXPORT=process (OTLP encoding and sending).
                "exporter_cpu_us": round(observed["children_cpu_us"]),
                "worker_cpu_us": round(worker_cpu_on),
                "spans_exported": collector.spans,
                "observed": args.observe,
                "trace_export": observed_env.get("TETHER_TRACE_EXPORT", "thread"),  # the engine's default
                "sampler": _sampler_label(observed_env),
                "accepted_metric": _metric_total(
                    metrics_dir, "tether_webhook_deliveries_total", definition="benchhooks", outcome="accepted"
                ),
                "recorded": total - recorded_before,
            }
            # Issue 23's measure: throughput with tracing and metrics on ÷ without, each side in this one run.
            result["obs_ratio"] = round(observed["rate"] / hooks["rate"], 3)
            result["obs_drain_ratio"] = round(drain_on / result["processed_per_s"], 3)
        if args.obs_pairs > 0:
            result.update(_paired(args, server_env, path, bodies, Path(tmp)))
        print(
            f"database: {'sqlite' if args.sqlite else 'postgresql'}; hand-off: "
            f"{'the embedded worker' if args.process else 'Dramatiq over Redis, drained by one tether worker'}; "
            f"server: uvicorn http={args.http} loop={args.loop}, gc tuning: {'yes' if args.gc_tuning else 'no'}; "
            f"load: wrk -t2 -c{CONCURRENCY}, {args.seconds} s per phase",
            file=sys.stderr,
        )
        runtime.close()
        print(json.dumps(result))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        keys = list(client.scan_iter(f"{namespace}:*"))
        if keys:
            client.delete(*keys)
        client.close()
        if admin is not None:
            with admin.connect() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


if __name__ == "__main__":
    main()
