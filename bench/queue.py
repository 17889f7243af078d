"""``python -m bench queue``: no-op queued runs end to end through Redis, next to plain Dramatiq actors.

Engine: a no-op queued operation dispatched ``RUNS`` times (run row inserted, message with the run ID sent to
Redis), executed by one ``tether worker`` process (64 threads, its default): claim, load integration/definition,
run, record. Runs/s is ``RUNS / (last finished_at - first queued_at)``; latency is ``started_at - queued_at`` per run.

Plain: the same number of messages to a plain Dramatiq actor (default middleware) in one worker process with the
same number of threads; the actor only pushes its start latency to a Redis list. The ratio is the engine's
throughput over plain. ``BENCH_THREADS`` changes the thread count of both sides. Each side first handles
``TETHER_BENCH_QUEUE_WARMUP`` (500) messages that are not measured, so both are compared warm; each also prints the
CPU time its worker process spent per measured message. ``TETHER_BENCH_QUEUE_ROUNDS`` (3) rounds of both; the
figures reported are those of the round with the median ratio, and latencies are pooled over the rounds.

Observed: each round runs the engine again with tracing and metrics on, once per sampler of
``TETHER_BENCH_QUEUE_SAMPLERS`` (``default,always_on``: the engine's default sampler, as a deployment that names
none runs it, then every span), ``obs_ratio`` = its runs/s over the engine's without them in the same round: the
worker with ``TETHER_TRACE_FILE`` (spans as JSON lines, in batches every 100 ms) and ``TETHER_METRICS_DIR``
(prometheus-client's multiprocess files), the dispatching process with the same span exporter, sampler and IDs
installed (``tracing.use``), so each sampled run's trace goes from the dispatch through the message to the worker.
The top-level ``obs_ratio`` is the first sampler's, ``by_sampler`` has each one's. Metrics cannot be switched off:
without ``TETHER_METRICS_DIR`` they are kept in process memory.

This process sends both sides' messages (the engine's through ``Executor.dispatch``, as the API server does) and
runs with the server's garbage-collector settings (``tune_gc``) for both.

Database: a scratch schema of the local PostgreSQL (``TETHER_BENCH_POSTGRES_URL``), dropped afterwards. Redis:
``TETHER_BENCH_REDIS_URL`` under a private namespace, deleted afterwards. Last line: one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from engine import Definition, Operation, OperationContext, Policy

RUNS = int(os.environ.get("TETHER_BENCH_QUEUE_RUNS", "2000"))
#: Messages each side handles before the measured ones (caches, prepared statements, connection pools).
WARMUP = int(os.environ.get("TETHER_BENCH_QUEUE_WARMUP", "500"))
#: Side-by-side rounds (plain, then engine); the reported figures are those of the round with the median ratio.
ROUNDS = int(os.environ.get("TETHER_BENCH_QUEUE_ROUNDS", "3"))
THREADS = int(os.environ.get("BENCH_THREADS", "64"))
#: The observed sides of a round, by sampler: ``default`` (``OTEL_TRACES_SAMPLER`` unset, the engine's default) and
#: ``always_on`` (every span), or ``TETHER_BENCH_QUEUE_SAMPLERS`` (comma-separated ``OTEL_TRACES_SAMPLER`` names).
SAMPLERS = [s for s in os.environ.get("TETHER_BENCH_QUEUE_SAMPLERS", "default,always_on").split(",") if s]
REDIS_URL = os.environ.get("TETHER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("TETHER_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
ROOT = Path(__file__).resolve().parents[1]
#: The worker processes import the engine of this checkout (its ``src``), not whichever the environment installed:
#: with only ``ROOT`` on the path, a worktree's bench measured the main checkout's worker.
CHECKOUT_PATH = os.pathsep.join([str(ROOT / "src"), str(ROOT)])


class Noop(Operation):
    """Do nothing."""

    policy = Policy.queued(max_retries=0)

    async def run(self, ctx: OperationContext) -> None:
        return None


definition = Definition(id="benchq", name="Bench queue", description="A no-op operation.", operations=(Noop,))


# -- plain Dramatiq --------------------------------------------------------------------------------------------


def plain_worker() -> None:
    """The plain side's worker process: one no-op actor that records its start latency."""
    import dramatiq
    import redis
    from dramatiq.brokers.redis import RedisBroker

    namespace = os.environ["BENCH_NAMESPACE"]
    broker = RedisBroker(url=REDIS_URL, namespace=namespace)
    dramatiq.set_broker(broker)
    client = redis.Redis.from_url(REDIS_URL)

    @dramatiq.actor(broker=broker, queue_name="plain", max_retries=0)
    def noop(sent_at: float) -> None:
        client.rpush(f"{namespace}:lat", json.dumps([time.time() - sent_at, time.time()]))

    worker = dramatiq.Worker(broker, worker_threads=THREADS, worker_timeout=200)
    worker.start()
    print("ready", flush=True)
    sys.stdin.read()  # until the parent closes stdin
    worker.stop()


def run_plain(namespace: str) -> tuple[float, list[float]]:
    import dramatiq
    import redis
    from dramatiq.brokers.redis import RedisBroker

    env = {**os.environ, "BENCH_NAMESPACE": namespace, "PYTHONPATH": CHECKOUT_PATH}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from bench.queue import plain_worker; plain_worker()"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline().strip() == "ready"
    broker = RedisBroker(url=REDIS_URL, namespace=namespace)
    actor = dramatiq.Actor(
        lambda sent_at: None, broker=broker, actor_name="noop", queue_name="plain", priority=0, options={}
    )
    client = redis.Redis.from_url(REDIS_URL)
    for _ in range(WARMUP):
        actor.send(time.time())
    while client.llen(f"{namespace}:lat") < WARMUP:
        time.sleep(0.05)
    client.delete(f"{namespace}:lat")
    ready_cpu = _cpu_seconds(proc.pid)
    began = time.time()
    for _ in range(RUNS):
        actor.send(time.time())
    while client.llen(f"{namespace}:lat") < RUNS:
        time.sleep(0.05)
    rows = [json.loads(x) for x in client.lrange(f"{namespace}:lat", 0, -1)]
    cpu_ms = (_cpu_seconds(proc.pid) - ready_cpu) * 1000 / RUNS
    print(f"plain: the worker process used {cpu_ms:.2f} ms of CPU per message")
    proc.stdin.close()
    proc.wait(timeout=30)
    finished = max(r[1] for r in rows)
    return RUNS / (finished - began), [r[0] * 1000 for r in rows]


# -- the engine ------------------------------------------------------------------------------------------------


def run_engine(
    namespace: str, database_url: str, tmp: Path, *, observed: str | None = None
) -> tuple[float, list[float]]:
    """The engine side; ``observed``: with tracing (every span of both processes written to a JSON-lines file,
    ``TETHER_TRACE_FILE`` in the worker, the same exporter installed in this dispatching process) and multiprocess
    metrics (``TETHER_METRICS_DIR``: every sample the worker records goes to its memory-mapped files), under the
    sampler named: ``default`` (``OTEL_TRACES_SAMPLER`` unset: the engine's default, as ``tracing.configure`` sets it
    up in both processes) or an ``OTEL_TRACES_SAMPLER`` (``always_on``: every span)."""
    from sqlmodel import func, select

    from engine.custody.crypto import generate_master_key
    from engine.observability import tracing
    from engine.queue import worker as worker_module
    from engine.runtime import Runtime
    from engine.settings import Settings
    from engine.store.tables import Integration, IntegrationStatus, Run, RunStatus

    observability: dict[str, str] = {}
    os.environ.pop("OTEL_TRACES_SAMPLER", None)  # each observed side names its own, the others none
    if observed:
        from opentelemetry.sdk.trace import TracerProvider

        observability = {"TETHER_TRACE_FILE": str(tmp / "spans.jsonl"), "TETHER_METRICS_DIR": str(tmp / "metrics")}
        if observed != "default":
            observability["OTEL_TRACES_SAMPLER"] = observed
            os.environ["OTEL_TRACES_SAMPLER"] = observed  # read by this process's provider too
        # This process's provider as ``tracing.configure`` makes one (its sampler and IDs), writing its own file.
        provider = TracerProvider(sampler=tracing.sampler(Settings()), id_generator=tracing.PrimedIds())
        provider.add_span_processor(tracing.file_processor(tmp / "spans-api.jsonl"))  # what TETHER_TRACE_FILE sets up
        tracing.use(provider)
    env = {
        "TETHER_DATABASE_URL": database_url,
        "TETHER_SECRET_MASTER_KEY": generate_master_key(),
        "TETHER_DEFINITION_MODULES": "bench.queue",
        "TETHER_ENABLED_DEFINITIONS": "benchq",
        "TETHER_STATE_DIR": str(tmp),
        "TETHER_BROKER_URL": REDIS_URL,
        "TETHER_BROKER_NAMESPACE": namespace,
        "PYTHONPATH": CHECKOUT_PATH,
    }
    os.environ.update(env)
    runtime = Runtime.start(Settings(), migrate=True)
    worker_module.reset()
    with runtime.db.session() as session:
        integration = Integration(
            tenant_id="bench", owner_id="bench", definition_id="benchq", status=IntegrationStatus.connected
        )
        session.add(integration)
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli_workers", "worker", "--threads", str(THREADS)],
        env={**os.environ, **env, **observability},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    assert "ready" in proc.stdout.readline()

    async def dispatch_all(count: int) -> None:
        # Callers dispatch concurrently (an API server does); 16 in flight at a time.
        gate = asyncio.Semaphore(16)

        async def one() -> None:
            async with gate:
                await runtime.executor.dispatch(integration.id, "Noop", trigger="api")

        await asyncio.gather(*(one() for _ in range(count)))

    def wait_until_succeeded(count: int) -> None:
        while True:
            with runtime.db.session() as session:
                done = session.exec(
                    select(func.count()).select_from(Run).where(Run.status == RunStatus.succeeded)
                ).one()
            if done >= count:
                return
            time.sleep(0.1)

    try:
        asyncio.run(dispatch_all(WARMUP))
        wait_until_succeeded(WARMUP)
        with runtime.db.session() as session:
            warm = set(session.exec(select(Run.id)).all())
        ready_cpu = _cpu_seconds(proc.pid)
        dispatch_began = time.perf_counter()
        asyncio.run(dispatch_all(RUNS))
        dispatch_seconds = time.perf_counter() - dispatch_began
        wait_until_succeeded(WARMUP + RUNS)
        with runtime.db.session() as session:
            runs = [run for run in session.exec(select(Run)).all() if run.id not in warm]
        worker_cpu = _cpu_seconds(proc.pid) - ready_cpu
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        worker_module.reset()
        runtime.close()
        if observed:
            provider.shutdown()  # the spans still queued are written
            tracing.use(None)
    if observed:
        spans = sum(1 for path in tmp.glob("spans*.jsonl") for _ in path.open())
        samples = sum(1 for _ in (tmp / "metrics").glob("*.db"))
        print(f"engine (observed, {observed}): {spans} spans written, {samples} metric files")
        # Three spans a sampled run (send, process, execute): at least a third of the ratio's share must be there.
        expected = RUNS * (
            1.0 if observed == "always_on" else tracing.DEFAULT_SAMPLE_RATIO if observed == "default" else 0
        )
        if spans < expected:
            raise RuntimeError(f"tracing was meant to be on: only {spans} spans for {RUNS} runs ({observed})")
    first = min(r.queued_at for r in runs)
    last = max(r.finished_at for r in runs if r.finished_at is not None)
    latencies = [(r.started_at - r.queued_at).total_seconds() * 1000 for r in runs if r.started_at is not None]
    print(
        f"engine{f' (observed, {observed})' if observed else ''}: dispatching took {dispatch_seconds:.2f} s "
        f"({RUNS / dispatch_seconds:.0f} runs/s); the worker process used {worker_cpu * 1000 / RUNS:.2f} ms of CPU "
        "per run"
    )
    return RUNS / (last - first).total_seconds(), latencies


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def one_round() -> tuple[float, float, list[float], dict[str, float]]:
    """Plain Dramatiq, then the engine, then the engine with tracing and metrics on under each of ``SAMPLERS``, each
    on fresh queues and (the engine) a fresh schema. Returns the engine's rate, plain's, the engine's latencies and
    the observed rates by sampler."""
    import tempfile

    import redis
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from engine.store.database import normalize_url

    namespace = f"bench_{uuid.uuid4().hex[:10]}"
    schemas = [f"bench_queue_{uuid.uuid4().hex[:10]}" for _ in range(1 + len(SAMPLERS))]
    admin = create_engine(normalize_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for schema in schemas:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    urls = [
        make_url(normalize_url(POSTGRES_URL))
        .update_query_dict({"options": f"-csearch_path={schema}"})
        .render_as_string(hide_password=False)
        for schema in schemas
    ]
    client = redis.Redis.from_url(REDIS_URL)
    observed: dict[str, float] = {}
    try:
        plain_rate, _plain_lat = run_plain(namespace + "p")
        with tempfile.TemporaryDirectory() as tmp:
            rate, latencies = run_engine(namespace, urls[0], Path(tmp))
        for i, sampler in enumerate(SAMPLERS):
            with tempfile.TemporaryDirectory() as tmp:
                observed[sampler], _ = run_engine(f"{namespace}o{i}", urls[1 + i], Path(tmp), observed=sampler)
    finally:
        with admin.connect() as connection:
            for schema in schemas:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
        for prefix in (namespace, namespace + "p", *(f"{namespace}o{i}" for i in range(len(SAMPLERS)))):
            keys = list(client.scan_iter(f"{prefix}:*"))
            if keys:
                client.delete(*keys)
    print(
        f"round: engine {rate:.0f} runs/s, plain {plain_rate:.0f} msgs/s, ratio {rate / plain_rate:.3f}; observed "
        + ", ".join(f"{name} {value:.0f} runs/s, obs_ratio {value / rate:.3f}" for name, value in observed.items())
    )
    return rate, plain_rate, latencies, observed


def main() -> None:
    from engine.processes import tune_gc

    # This process sends both sides' messages and, for the engine, stands in for the API server (`tether serve`),
    # which tunes its garbage collector once started; the same settings for both sides' senders.
    tune_gc()
    rounds = [one_round() for _ in range(ROUNDS)]
    # The median round by ratio: both figures of one side-by-side measurement, not medians taken apart; the same
    # for the observability ratio (its own median round).
    rate, plain_rate, _, _ = sorted(rounds, key=lambda r: r[0] / r[1])[len(rounds) // 2]
    latencies = [value for _, _, values, _ in rounds for value in values]
    p50, p99 = _percentile(latencies, 50), _percentile(latencies, 99)
    print(f"engine: {RUNS} no-op runs, {rate:.0f} runs/s, enqueue->start p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    print(f"plain dramatiq: {RUNS} no-op messages, {plain_rate:.0f} msgs/s")
    print(f"ratios of the {ROUNDS} rounds: " + ", ".join(f"{r / p:.3f}" for r, p, _, _ in rounds))
    by_sampler: dict[str, dict[str, Any]] = {}
    for sampler in SAMPLERS:
        # The median round by this sampler's obs_ratio: both rates of one side-by-side measurement.
        off, _, _, on = sorted(rounds, key=lambda r: r[3][sampler] / r[0])[len(rounds) // 2]
        ratios = [round(o[sampler] / r, 3) for r, _, _, o in rounds]
        print(f"obs_ratios ({sampler}) of the {ROUNDS} rounds: " + ", ".join(f"{x:.3f}" for x in ratios))
        by_sampler[sampler] = {
            "observed_runs_per_s": round(on[sampler], 1),
            "unobserved_runs_per_s": round(off, 1),
            "obs_ratio": round(on[sampler] / off, 3),
            "obs_ratios": ratios,
        }
    first = by_sampler[SAMPLERS[0]]
    result = {
        "runs_per_s": round(rate, 1),
        "plain_dramatiq_per_s": round(plain_rate, 1),
        "ratio": round(rate / plain_rate, 3),
        "p50_ms": round(p50, 2),
        "p99_ms": round(p99, 2),
        # The first sampler's (``default``: what a deployment that names none runs); every one's below.
        "observed_runs_per_s": first["observed_runs_per_s"],
        "unobserved_runs_per_s": first["unobserved_runs_per_s"],
        "obs_ratio": first["obs_ratio"],
        "sampler": SAMPLERS[0],
        "by_sampler": by_sampler,
    }
    print(json.dumps(result))
