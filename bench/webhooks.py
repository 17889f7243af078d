"""``python -m bench webhooks``: signed webhook deliveries per second against the same server's no-op POST route.

A uvicorn server (1 worker, its own process) serves ``POST /v1/webhooks/{token}`` (read the raw body, look up the
endpoint, open its sealed secret, verify the GitHub-style HMAC, record the delivery with ON CONFLICT, acknowledge)
and ``POST /noop`` (reads the body, answers 200): the ceiling. A load generator on loopback keeps 50 connections
busy, first on the no-op route, then with distinct signed deliveries; every delivery must be answered 202.

Processing is handed off: by default the recorded deliveries are left to the worker side (``--process`` processes
them in the server's own event loop instead, as the embedded default does). Database: a scratch schema of the local
PostgreSQL (``--sqlite`` for a SQLite file). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from fastapi import FastAPI, Request, Response

from engine import Definition, EndpointSecret, EventContext, Header, HmacSha256, Payload, Webhook, WebhookEvent

CONCURRENCY = 50
POSTGRES_URL = os.environ.get("TETHER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


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


def build_app(database_url: str, process: bool) -> FastAPI:
    from engine.api.errors import install_error_handlers
    from engine.api.limits import BodyLimit
    from engine.api.webhooks import router
    from engine.registry import Registry
    from engine.runtime import Runtime
    from engine.settings import Settings

    registry = Registry()
    registry.register(definition)
    runtime = Runtime.start(Settings(database_url=database_url), registry=registry)
    app = FastAPI()
    app.state.runtime = runtime
    if not process:
        app.state.webhook_handoff = lambda runtime, row_id: None  # the queue's worker side processes
    install_error_handlers(app)
    app.add_middleware(BodyLimit)
    app.include_router(router)

    @app.post("/noop")
    async def noop(request: Request) -> Response:
        await request.body()
        return Response(b'{"status":"ok"}', media_type="application/json")

    return app


def serve() -> None:
    import uvicorn

    port = int(os.environ["BENCH_PORT"])
    app = build_app(os.environ["BENCH_DATABASE_URL"], os.environ.get("BENCH_PROCESS") == "1")
    uvicorn.run(app, host="127.0.0.1", port=port, workers=1, log_level="warning", access_log=False)


# -- load generator ----------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _load(base: str, requests: list[tuple[str, bytes, dict[str, str]]], expect: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue = list(reversed(requests))
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def worker() -> None:
            while queue:
                path, body, headers = queue.pop()
                started = time.perf_counter()
                response = await client.post(path, content=body, headers=headers)
                latencies.append(time.perf_counter() - started)
                if response.status_code != expect:
                    raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return len(requests) / (time.perf_counter() - started), latencies


def _wrk(base: str, lua: str, seconds: int) -> tuple[float, float, float]:
    """Drive the server with ``wrk`` (C, Debian's package) for ``seconds``; returns requests/s, p50 and p99 (ms).

    wrk costs far less per request than a Python client, so on a small machine it measures the server, not the
    load generator. Any non-2xx answer fails the bench.
    """
    import re
    import shutil

    wrk = shutil.which("wrk")
    assert wrk is not None
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    try:
        out = subprocess.run(
            [wrk, "-t2", f"-c{CONCURRENCY}", f"-d{seconds}s", "--latency", "-s", script.name, base],
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

    def percentile(label: str) -> float:
        value, unit = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)\b", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return rate, percentile("50"), percentile("99")


def _wrk_script(host: str, path: str, entries: list[tuple[str, str, str]]) -> str:
    """A wrk script cycling through pre-signed deliveries (Lua cannot compute the HMAC itself); each of the two
    threads starts in its own half, so no delivery ID is sent twice within a run of fewer than len/2 each."""
    data = ",\n".join(f"{{{json.dumps(body)}, {json.dumps(sig)}, {json.dumps(did)}}}" for body, sig, did in entries)
    return f"""local data = {{{data}}}
local threads = 0
setup = function(thread) thread:set("tid", threads); threads = threads + 1 end
local i = 0
init = function(args) i = (tid or 0) * math.floor(#data / 2) end
request = function()
  i = i % #data + 1
  local d = data[i]
  return wrk.format("POST", {json.dumps(path)}, {{["Host"] = {json.dumps(host)},
    ["Content-Type"] = "application/json", ["X-GitHub-Event"] = "push", ["X-Hub-Signature-256"] = d[2],
    ["X-GitHub-Delivery"] = d[3]}}, d[1])
end
"""


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench webhooks")
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument("--process", action="store_true", help="process deliveries in the server's event loop")
    parser.add_argument("--seconds", type=int, default=10, help="duration of each phase with wrk")
    parser.add_argument("--python-client", action="store_true", help="use the httpx load generator even with wrk")
    args, _ = parser.parse_known_args(sys.argv[2:] if sys.argv[1:2] == ["webhooks"] else sys.argv[1:])

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from engine.crypto import generate_master_key
    from engine.database import Database, normalize_url
    from engine.endpoints import endpoint_secret, ensure_endpoints
    from engine.registry import Registry
    from engine.runtime import Runtime
    from engine.settings import Settings
    from engine.tables import Integration, IntegrationStatus, WebhookEndpoint

    os.environ["TETHER_SECRET_MASTER_KEY"] = generate_master_key()
    tmp = tempfile.mkdtemp(prefix="bench-webhooks-")
    schema = f"bench_webhooks_{uuid.uuid4().hex[:8]}"
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
    server = None
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
        token = endpoint.url.rsplit("/", 1)[1]

        port = _free_port()
        env = {
            **os.environ,
            "BENCH_PORT": str(port),
            "BENCH_DATABASE_URL": url,
            "BENCH_PROCESS": "1" if args.process else "0",
            "TETHER_STATE_DIR": tmp,
        }
        server = subprocess.Popen([sys.executable, "-c", "from bench.webhooks import serve; serve()"], env=env)
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                httpx.post(base + "/noop", content=b"{}")
                break
            except httpx.TransportError:
                time.sleep(0.05)

        def delivery(i: int) -> tuple[str, bytes, dict[str, str]]:
            body = json.dumps({"ref": "refs/heads/main", "n": i, "pad": "x" * 600}).encode()
            signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            headers = {
                "X-Hub-Signature-256": signature,
                "X-GitHub-Event": "push",
                "X-GitHub-Delivery": f"d-{i}",
                "content-type": "application/json",
            }
            return f"/v1/webhooks/{token}", body, headers

        noop_body = json.dumps({"ref": "refs/heads/main", "n": 0, "pad": "x" * 600}).encode()
        warm = [delivery(-i - 1) for i in range(300)]
        asyncio.run(_load(base, warm, 202))
        asyncio.run(_load(base, [("/noop", noop_body, {"content-type": "application/json"})] * 300, 200))
        import shutil

        use_wrk = shutil.which("wrk") is not None and not args.python_client
        if use_wrk:
            host = f"127.0.0.1:{port}"
            noop_lua = _wrk_script(host, "/noop", [(noop_body.decode(), "-", "-")])
            noop_rate, _, _ = _wrk(base, noop_lua, args.seconds)
            signed = [delivery(i) for i in range(60_000)]
            entries = [(b.decode(), h["X-Hub-Signature-256"], h["X-GitHub-Delivery"]) for _, b, h in signed]
            rate, p50, p99 = _wrk(base, _wrk_script(host, signed[0][0], entries), args.seconds)
        else:
            noop_rate, _ = asyncio.run(
                _load(base, [("/noop", noop_body, {"content-type": "application/json"})] * args.requests, 200)
            )
            rate, latencies = asyncio.run(_load(base, [delivery(i) for i in range(args.requests)], 202))
            p50, p99 = _pct(latencies, 0.50), _pct(latencies, 0.99)
        result = {
            "deliveries_per_s": round(rate, 1),
            "noop_per_s": round(noop_rate, 1),
            "ratio": round(rate / noop_rate, 3),
            "p50_ms": round(p50, 2),
            "p99_ms": round(p99, 2),
            "concurrency": CONCURRENCY,
        }
        print(
            f"database: {'sqlite' if args.sqlite else 'postgresql'}; processing: "
            f"{'in the server loop' if args.process else 'handed off'}; load: "
            + (f"wrk, {args.seconds} s per phase" if use_wrk else f"httpx, {args.requests} requests per phase"),
            file=sys.stderr,
        )
        runtime.close()
        print(json.dumps(result))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        if admin is not None:
            with admin.connect() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


if __name__ == "__main__":
    main()
