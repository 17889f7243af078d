"""Every route, hostile input, both databases: no 5xx, and every 4xx is the documented envelope (issue 16, Proof).

The routes come from the app's router (``support.hostile.enumerate_routes``), so a new route is fuzzed without
being listed here; the count is asserted so that none is silently skipped, and every operation of
``/openapi.json`` must be among them. The draw is derandomized (the same requests on every run) and small per
route; ``python -m bench fuzz`` runs the same probes for longer.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.store.database import Database
from support.hostile import (
    Request,
    Response,
    RouteSpec,
    World,
    documented_codes,
    enumerate_routes,
    openapi_operations,
    probe,
    problem,
    world,
)

#: Requests drawn per route and database: 72 routes x 2 databases x 15 is ~30 s on a 2-core machine.
EXAMPLES = 15
#: The (method, path) pairs the app had when this was written. Fewer means the enumeration lost some (FastAPI
#: 0.16x keeps included routers lazy, for one); a new route raises the count and is fuzzed either way.
KNOWN_ROUTES = 72


@pytest.fixture(params=["sqlite", "postgres"])
def fuzz_world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    database: Database = request.getfixturevalue(f"{request.param}_database")
    with world(database.url, tmp_path) as made:
        yield made


def test_every_route_is_covered(fuzz_world: World) -> None:
    keys = {spec.key for spec in fuzz_world.routes}
    assert len(keys) == len(fuzz_world.routes), "a route is listed twice"
    missing = openapi_operations(fuzz_world.app) - keys
    assert not missing, f"operations of /openapi.json the fuzzer does not see: {sorted(missing)}"
    # Outside /openapi.json: SCIM discovery's other methods, the static files, the page, the document itself.
    outside = {spec.key for spec in fuzz_world.routes if not spec.in_schema}
    for key in (
        "POST /v1/scim/{token}/v2/Schemas",
        "GET /static/{path}",
        "GET /integrations",
        "GET /openapi.json",
        "POST /dev/login",
    ):
        assert key in outside, key
    for key in ("POST /v1/webhooks/{token}", "GET /v1/oauth/callback", "POST /v1/scim/{token}/v2/{kind}"):
        assert key in keys and key not in outside, key
    assert len(keys) >= KNOWN_ROUTES, sorted(keys)


def test_hostile_input_gets_no_server_error_and_the_documented_envelope(fuzz_world: World) -> None:
    codes, scim_types = documented_codes()
    assert "invalid_input" in codes and "invalidValue" in scim_types
    covered: dict[str, int] = {}
    credentials = {"api key": 0, "no api key": 0}
    server_key = f"Bearer {fuzz_world.api_key}".encode()

    for spec in fuzz_world.routes:

        def check(request: Request, response: Response, spec: RouteSpec = spec) -> None:
            covered[spec.key] = covered.get(spec.key, 0) + 1
            credentials["api key" if (b"authorization", server_key) in request.headers else "no api key"] += 1
            wrong = problem(spec, response, codes, scim_types)
            assert wrong is None, f"{spec.key}: {wrong}\n{request.describe()}"

        probe(fuzz_world, spec, check, max_examples=EXAMPLES)

    assert set(covered) == {spec.key for spec in enumerate_routes(fuzz_world.app)}
    assert all(n >= 1 for n in covered.values())
    # With the server's API key, and without it (nothing, a user key, the SCIM bearer, a signed principal, a
    # session cookie, or hostile bytes in their place).
    assert credentials["api key"] > 150 and credentials["no api key"] > 150, credentials
