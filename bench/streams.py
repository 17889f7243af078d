"""Declarative streams: what the kit's loop costs beside the provider and the ingest pipeline.

    python -m bench streams                 (200 pages of 100 records; TETHER_BENCH_PAGES=N for fewer)
    python -m bench.streams [--pages N] [--size N] [--only sqlite|postgres]

Three figures: the runner's page rate against a local server on 127.0.0.1 answering Notion-shaped pages (request
built from the spec, the egress guard, JSON read, record selection, the guards, one ``Checkpoint`` per page; no
ingest), the identical-page guard alone (SHA-256 of a page's canonical JSON), and the checkpoint's own write (the
executor's conditional ``UPDATE run SET checkpoint``) per page on SQLite and PostgreSQL. The last line is one JSON
object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from typing import Any

from sqlalchemy import update
from sqlmodel import col

from bench._serve import serve
from bench.ingest import postgres, sqlite
from engine import Checkpoint, NoConfig, OperationContext
from engine.kit.egress import egress_client
from engine.kit.streams import StreamRunner, StreamSpec
from engine.kit.streams.guards import digest
from engine.store.database import Database
from engine.store.tables import Integration, IntegrationStatus, Run, RunStatus


def page_object(n: int) -> dict[str, Any]:
    """A Notion page as search answers it (the shape of tests/fixtures/streams/notion_search_page1.json)."""
    return {
        "object": "page",
        "id": f"59833787-2cf9-4fdf-8782-{n:012d}",
        "created_time": "2022-03-01T19:05:00.000Z",
        "last_edited_time": "2023-03-09T11:02:00.000Z",
        "created_by": {"object": "user", "id": "ee5f0f84"},
        "last_edited_by": {"object": "user", "id": "ee5f0f84"},
        "cover": None,
        "icon": None,
        "parent": {"type": "workspace", "workspace": True},
        "archived": False,
        "in_trash": False,
        "properties": {
            "title": {
                "id": "title",
                "type": "title",
                "title": [
                    {
                        "type": "text",
                        "text": {"content": f"Page {n}", "link": None},
                        "plain_text": f"Page {n}",
                        "href": None,
                    }
                ],
            }
        },
        "url": f"https://www.notion.so/Page-{n}",
        "public_url": None,
    }


def app(pages: int, size: int) -> Any:
    bodies = [
        json.dumps(
            {
                "object": "list",
                "results": [page_object(p * size + i) for i in range(size)],
                "next_cursor": f"cursor-{p + 1}" if p + 1 < pages else None,
                "has_more": p + 1 < pages,
            }
        ).encode()
        for p in range(pages)
    ]

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        cursor = json.loads(raw or b"{}").get("start_cursor")
        body = bodies[int(cursor.split("-")[1]) if cursor else 0]
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    return asgi


def server(pages: int, size: int) -> Any:
    return serve(app(pages, size))


SPEC = StreamSpec.model_validate(
    {
        "name": "PageSync",
        "request": {"path": "/v1/search", "method": "POST", "body": {"filter": {"value": "page"}}},
        "records": "results",
        "schema": "file",
        "variant": "page",
        "map": "{}",
        "pagination": {"kind": "cursor", "cursorPath": "next_cursor", "param": "start_cursor", "in": "body"},
        "stop": {"hasMorePath": "has_more"},
    }
)


async def run_stream(base: str) -> tuple[float, int, int]:
    async with egress_client(allow_loopback=True) as client:
        ctx = OperationContext("int_bench", "t", NoConfig(), client, None, None)
        records = checkpoints = 0
        start = time.perf_counter()
        async for item in StreamRunner(SPEC, base_url=base, provider="bench").run(ctx):
            if isinstance(item, Checkpoint):
                checkpoints += 1
            else:
                records += 1
        return time.perf_counter() - start, records, checkpoints


def checkpoint_writes(db: Database, pages: int) -> float:
    """Seconds per ``UPDATE run SET checkpoint`` (the executor's ``_save_checkpoint``), median of ``pages``."""
    with db.session() as session:
        integration = Integration(
            tenant_id="t", owner_id="u", definition_id="bench", status=IntegrationStatus.connected
        )
        session.add(integration)
        session.flush()
        run = Run(
            integration_id=integration.id, tenant_id="t", operation="PageSync", trigger="api", status=RunStatus.running
        )
        session.add(run)
        run_id = run.id
    state = {
        "v": 1,
        "stream": "PageSync",
        "base": None,
        "position": {"cursor": "x"},
        "pages": 0,
        "fetched": 0,
        "seen": [],
        "last_page": None,
        "high": None,
    }
    times = []
    for page in range(pages):
        state = {**state, "pages": page + 1, "seen": [*state["seen"], digest(page)]}
        start = time.perf_counter()
        with db.session() as session:
            session.execute(
                update(Run).where(col(Run.id) == run_id, col(Run.status) == RunStatus.running).values(checkpoint=state)
            )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench streams")
    parser.add_argument("--pages", type=int, default=int(os.environ.get("TETHER_BENCH_PAGES", "200")))
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    args = parser.parse_args([a for a in sys.argv[1:] if a != "streams"])
    os.environ["TETHER_STREAM_MAX_PAGES"] = str(max(args.pages, 1000))
    out: dict[str, Any] = {"pages": args.pages, "records_per_page": args.size}

    with server(args.pages, args.size) as base:
        seconds, records, checkpoints = asyncio.run(run_stream(base))
    assert records == args.pages * args.size and checkpoints == args.pages - 1
    out["runner_pages_per_s"] = round(args.pages / seconds, 1)
    out["runner_records_per_s"] = round(records / seconds)
    print(
        f"runner: {args.pages} pages, {records} records in {seconds:.2f}s "
        f"({out['runner_pages_per_s']} pages/s, {out['runner_records_per_s']} records/s)"
    )

    page = [page_object(i) for i in range(args.size)]
    rounds = 200
    start = time.perf_counter()
    for _ in range(rounds):
        digest(page)
    out["page_digest_ms"] = round((time.perf_counter() - start) / rounds * 1000, 3)
    print(f"identical-page guard: {out['page_digest_ms']} ms per page of {args.size}")

    for name, factory in (("sqlite", sqlite), ("postgres", postgres)):
        if args.only and args.only != name:
            continue
        with factory() as db:
            median = checkpoint_writes(db, args.pages)
        out[f"checkpoint_write_ms_{name}"] = round(median * 1000, 3)
        print(f"checkpoint write ({name}): {out[f'checkpoint_write_ms_{name}']} ms per page (median)")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
