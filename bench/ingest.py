"""Ingest throughput: directory-account payloads through filter + map + validate + batched upsert.

    python -m bench ingest                     (100,000 records; TETHER_BENCH_RECORDS=N for fewer)
    python -m bench.ingest [--records N] [--page N] [--profile cel|python] [--only sqlite|postgres]

The same pipeline runs twice per database: with the mapping in CEL (celpy, the reference evaluator) and with the
mapping written as a plain Python function. A third figure per database, the stock upsert alone on the already
validated rows, is the database's own limit for this path. Then the change feed's cost, side by side: the Python
mapping with change recording (the default) and without (``IngestPipeline(changes=False)``), on a first ingest
(every record new) and on a re-ingest of the same records (every upsert a no-op). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from engine import Definition, Emits, Mapping, Operation, OperationContext, Payload
from engine.catalog.registry import Registry
from engine.store.database import Database, normalize_url
from ingest.catalog import catalog
from ingest.persistence.stock import PersistBatch, Record, stock_upsert
from ingest.pipeline import IngestContext, IngestPipeline, python_mapping

POSTGRES_URL = os.environ.get("TETHER_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
EMITS = (Emits("directory_account", "user"),)

FILTER = "!has(payload.isBot) || !payload.isBot"
MAP = """
{
  "external_id": payload.id,
  "email": payload.primaryEmail,
  "display_name": payload.name.fullName,
  "given_name": payload.name.givenName,
  "family_name": payload.name.familyName,
  "username": payload.primaryEmail,
  "account_type": "user",
  "status": payload.suspended ? "suspended" : "active",
  "is_admin": payload.isAdmin,
  "mfa_enabled": payload.isEnrolledIn2Sv,
  "last_login_at": has(payload.lastLoginTime) ? payload.lastLoginTime : null,
  "source_created_at": payload.creationTime
}
"""


def python_filter(a: dict[str, Any]) -> bool:
    return not a["payload"].get("isBot", False)


def python_map(a: dict[str, Any]) -> dict[str, Any]:
    p = a["payload"]
    name = p["name"]
    return {
        "external_id": p["id"],
        "email": p["primaryEmail"],
        "display_name": name["fullName"],
        "given_name": name["givenName"],
        "family_name": name["familyName"],
        "username": p["primaryEmail"],
        "account_type": "user",
        "status": "suspended" if p["suspended"] else "active",
        "is_admin": p["isAdmin"],
        "mfa_enabled": p["isEnrolledIn2Sv"],
        "last_login_at": p.get("lastLoginTime"),
        "source_created_at": p["creationTime"],
    }


class UserSync(Operation):
    """Sync directory users."""

    emits = EMITS

    async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        yield Payload("directory_account", {}, variant="user")


BENCH = Definition(
    id="bench_directory",
    name="Bench directory",
    description="Google Workspace-shaped users.",
    operations=(UserSync,),
    mappings=(Mapping("directory_account", "user", FILTER, MAP),),
)


def users(n: int) -> list[Payload]:
    """Admin SDK ``users.list`` resources (about 1 KB each, as Google returns them)."""
    out = []
    for i in range(n):
        given, family = f"Given{i % 977}", f"Family{i % 1301}"
        out.append(
            Payload(
                "directory_account",
                {
                    "kind": "admin#directory#user",
                    "id": f"1{i:020d}",
                    "etag": f'"etag-{i:x}"',
                    "primaryEmail": f"{given.lower()}.{family.lower()}{i}@acme.example",
                    "name": {"givenName": given, "familyName": family, "fullName": f"{given} {family}"},
                    "isAdmin": i % 50 == 0,
                    "isDelegatedAdmin": False,
                    "lastLoginTime": "2024-05-01T12:34:56.000Z",
                    "creationTime": "2021-01-15T09:00:00.000Z",
                    "agreedToTerms": True,
                    "suspended": i % 40 == 0,
                    "archived": False,
                    "changePasswordAtNextLogin": False,
                    "ipWhitelisted": False,
                    "emails": [{"address": f"user{i}@acme.example", "primary": True}],
                    "languages": [{"languageCode": "en", "preference": "preferred"}],
                    "customerId": "C01abcdef",
                    "orgUnitPath": "/Engineering" if i % 3 else "/Sales",
                    "isMailboxSetup": True,
                    "isEnrolledIn2Sv": i % 5 != 0,
                    "isEnforcedIn2Sv": False,
                    "includeInGlobalAddressList": True,
                    "thumbnailPhotoUrl": f"https://lh3.googleusercontent.com/a/photo{i}",
                    "recoveryEmail": f"recovery{i}@example.org",
                },
                variant="user",
            )
        )
    return out


@contextmanager
def postgres() -> Iterator[Database]:
    admin = create_engine(normalize_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    schema = f"tether_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(normalize_url(POSTGRES_URL)).update_query_dict({"options": f"-csearch_path={schema}"})
    db = Database(url.render_as_string(hide_password=False))
    try:
        db.upgrade()
        yield db
    finally:
        db.dispose()
        with admin.connect() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def sqlite() -> Iterator[Database]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        db.upgrade()
        try:
            yield db
        finally:
            db.dispose()


def run_pipeline(pipeline: IngestPipeline, payloads: list[Payload], page: int, integration: str) -> float:
    ctx = IngestContext("tenant_bench", integration, "bench_directory", emits=EMITS)
    start = time.perf_counter()
    persisted = 0
    for offset in range(0, len(payloads), page):
        persisted += pipeline.process(ctx, payloads[offset : offset + page], start_position=offset).persisted
    elapsed = time.perf_counter() - start
    assert persisted == len(payloads), f"persisted {persisted} of {len(payloads)}"
    return elapsed


def run_upsert_only(db: Database, pipeline: IngestPipeline, payloads: list[Payload], page: int) -> float:
    """The stock upsert alone, on rows validated beforehand: the floor the whole path is measured against."""
    ctx = IngestContext("tenant_bench", "upsert_only", "bench_directory", emits=EMITS)
    spec = catalog()["directory_account"]
    rows = []
    for i, p in enumerate(payloads):
        obj = pipeline.evaluate(ctx, p, i).object
        assert obj is not None
        rows.append(Record(i, {**obj.model_dump(), **dict.fromkeys(("tenant_id", "integration_id"), "x")}))
    for r in rows:
        r.values.update(tenant_id="tenant_bench", integration_id="upsert_only", definition_id="bench_directory")
    start = time.perf_counter()
    for offset in range(0, len(rows), page):
        with db.engine.begin() as connection:
            batch = PersistBatch(
                connection, spec, "tenant_bench", "upsert_only", "bench_directory", rows[offset : offset + page]
            )
            assert not stock_upsert(batch)
    return time.perf_counter() - start


def profile(label: str, fn: Callable[[], Any]) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    fn()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
    print(f"--- profile: {label} (cumulative, top 25) ---")
    print(out.getvalue())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench ingest")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--page", type=int, default=1000, help="payloads per process() call (one transaction)")
    parser.add_argument("--profile", choices=("cel", "python"), help="print a cProfile summary of one variant")
    parser.add_argument("--only", choices=("sqlite", "postgres"))
    if argv is None:  # `python -m bench ingest …` leaves the benchmark's name in argv
        argv = [a for a in sys.argv[1:] if a != "ingest"]
    if not argv and os.environ.get("TETHER_BENCH_RECORDS"):
        argv = ["--records", os.environ["TETHER_BENCH_RECORDS"]]
    args = parser.parse_args(argv)

    registry = Registry()
    registry.register(BENCH)
    cel = IngestPipeline(registry, batch_size=args.page)
    python = IngestPipeline(
        registry,
        batch_size=args.page,
        mappings={
            ("bench_directory", "directory_account", "user"): python_mapping(
                "directory_account", "user", filter=python_filter, map=python_map
            )
        },
    )
    payloads = users(args.records)
    figures: dict[str, Any] = {"records": args.records}
    plain = IngestPipeline(registry, batch_size=args.page, mappings=python.overrides, changes=False)
    for name, database in (("postgres", postgres), ("sqlite", sqlite)):
        if args.only and args.only != name:
            continue
        with database() as db:
            cel.db = python.db = plain.db = db
            if args.profile:
                chosen = cel if args.profile == "cel" else python
                profile(f"{args.profile} on {name}", lambda p=chosen: run_pipeline(p, payloads, args.page, "prof"))
                continue
            floor = run_upsert_only(db, python, payloads, args.page)
            t_python = run_pipeline(python, payloads, args.page, "python")
            t_cel = run_pipeline(cel, payloads, args.page, "cel")
            n = args.records
            print(
                f"{name}: upsert alone {n / floor:,.0f}/s; python mapping {n / t_python:,.0f}/s "
                f"({t_floor_share(floor, t_python)} of it in the upsert); cel mapping {n / t_cel:,.0f}/s; "
                f"cel/python {t_python / t_cel:.3f}"
            )
            figures[f"cel_{name}_per_s"] = round(n / t_cel, 1)
            figures[f"python_{name}_per_s"] = round(n / t_python, 1)
            figures.update(change_feed_cost(name, python, plain, payloads, args.page))
    if not args.profile:
        keys = ["records", "cel_postgres_per_s", "python_postgres_per_s", "cel_sqlite_per_s", "python_sqlite_per_s"]
        keys += [k for k in figures if k.startswith("changes_")]
        print(json.dumps({k: figures.get(k) for k in keys}))


def change_feed_cost(
    name: str, recording: IngestPipeline, plain: IngestPipeline, payloads: list[Payload], page: int, rounds: int = 3
) -> dict[str, float]:
    """Records/s with and without the change feed, on new records and on a re-ingest of the same (unchanged) ones.

    Each round ingests into fresh integrations, alternating the two pipelines, so load from elsewhere on the
    machine falls on both alike; the figures are the medians of the rounds."""
    n = len(payloads)
    times: dict[tuple[str, str], list[float]] = {}
    for round_ in range(rounds):
        for label, pipeline in (("without", plain), ("with", recording)):
            integration = f"changes_{label}_{round_}"
            times.setdefault(("new", label), []).append(run_pipeline(pipeline, payloads, page, integration))
            times.setdefault(("unchanged", label), []).append(run_pipeline(pipeline, payloads, page, integration))
    out: dict[str, float] = {}
    for phase in ("new", "unchanged"):
        for label in ("without", "with"):
            out[f"changes_{name}_{phase}_{label}_per_s"] = round(n / statistics.median(times[(phase, label)]), 1)
        ratio = out[f"changes_{name}_{phase}_with_per_s"] / out[f"changes_{name}_{phase}_without_per_s"]
        out[f"changes_{name}_{phase}_ratio"] = round(ratio, 3)
        print(
            f"{name}: {phase} records, change feed on {out[f'changes_{name}_{phase}_with_per_s']:,.0f}/s, "
            f"off {out[f'changes_{name}_{phase}_without_per_s']:,.0f}/s (ratio {ratio:.3f}, median of {rounds})"
        )
    return out


def t_floor_share(floor: float, total: float) -> str:
    return f"{100 * floor / total:.0f}%"


if __name__ == "__main__":
    main()
