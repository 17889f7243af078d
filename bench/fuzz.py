"""``python -m bench fuzz``: the suite's hostile-input probes (``tests/support/hostile.py``), for longer.

Every route of the app (``enumerate_routes``: the ones in ``/openapi.json`` and the ones outside it) gets
``--examples`` requests drawn from the same strategies as ``tests/fuzz/test_hostile_input.py`` — NUL, lone
surrogates, unicode digits, huge numbers, 10,000-deep nesting, 100,000-character strings, Latin-1 header bytes, with
an API key and without — on a scratch schema of the local PostgreSQL (``--sqlite``: a SQLite file). Nothing is
shrunk and the run does not stop at a failure: it counts. ``server_errors`` are 5xx answers (and requests that
never answered within ``support.hostile.REQUEST_TIMEOUT``), ``envelope_errors`` 4xx answers that are not the
documented envelope with a code of ``docs/errors.md``. The first few of each are printed, then the last line is one
JSON object: ``{"examples", "server_errors", "envelope_errors", "routes", "status_2xx", …, "database", "seconds",
"seed"}`` (``status_Nxx``: how the answers spread, 2xx being probes that got past every check and were served).

Options: ``--examples N`` per route (default 200), ``--seed S`` (default: a fixed one, so runs repeat),
``--sqlite``, ``--show N`` problems printed per kind (default 10).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT / "src", ROOT / "tests", ROOT):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from engine.store.database import normalize_url  # noqa: E402
from support.hostile import Request, Response, RouteSpec, documented_codes, probe, problem, world  # noqa: E402

POSTGRES_URL = os.environ.get("TETHER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
DEFAULT_SEED = 16


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A scratch schema of the local PostgreSQL (the URL searches it), dropped afterwards."""
    admin = create_engine(normalize_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    schema = f"tether_fuzz_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(normalize_url(POSTGRES_URL)).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench fuzz")
    parser.add_argument("--examples", type=int, default=200, help="requests per route")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file instead of PostgreSQL")
    parser.add_argument("--show", type=int, default=10, help="problems printed per kind")
    args = parser.parse_args(sys.argv[2:])
    # Unhandled errors are logged by type by the app; the count below is what matters here.
    logging.getLogger("tether").setLevel(logging.CRITICAL)
    codes, scim_types = documented_codes()
    counts = {"examples": 0, "server_errors": 0, "envelope_errors": 0}
    per_route: dict[str, int] = {}
    #: How far the probes got: 2xx answers mean a probe passed every look-up and check and was served.
    statuses: dict[str, int] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        database = (
            contextmanager(lambda: iter([f"sqlite:///{scratch}/fuzz.db"]))() if args.sqlite else postgres_schema()
        )
        with database as url, world(url, Path(scratch)) as made:
            for spec in made.routes:

                def record(request: Request, response: Response, spec: RouteSpec = spec) -> None:
                    counts["examples"] += 1
                    answered = f"status_{response.status // 100}xx"
                    statuses[answered] = statuses.get(answered, 0) + 1
                    wrong = problem(spec, response, codes, scim_types)
                    if wrong is None:
                        return
                    kind = "server_errors" if wrong.startswith(("server error", "no response")) else "envelope_errors"
                    counts[kind] += 1
                    per_route[spec.key] = per_route.get(spec.key, 0) + 1
                    if counts[kind] <= args.show:
                        print(f"[{kind}] {spec.key}: {wrong[:300]}\n    {request.describe(120)}", flush=True)

                probe(made, spec, record, max_examples=args.examples, shrink=False, seed=args.seed)
            routes = len(made.routes)
    for key, n in sorted(per_route.items(), key=lambda item: -item[1]):
        print(f"{n:6d}  {key}")
    result = {
        **counts,
        "routes": routes,
        **dict(sorted(statuses.items())),
        "database": "sqlite" if args.sqlite else "postgresql",
        "seconds": round(time.perf_counter() - started, 1),
        "seed": args.seed,
        "examples_per_route": args.examples,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
