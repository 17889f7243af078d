"""The runs API (scoped by principal) and the provider kit (pagination guards, rate-limit parsing)."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient

from engine.api import create_app
from engine.api import runs as runs_api
from engine.api.principal import create_api_key
from engine.errors import ProviderError
from engine.kit.providerkit import (
    BearerAuth,
    ClientSecretAuth,
    CursorPages,
    LinkPages,
    NextLinkPages,
    OffsetPages,
    Page,
    PageRequest,
    PaginationLimit,
    PaginationLoop,
    RateLimited,
    TransientProviderError,
    check_response,
    follow_links,
    paginate,
    raise_for_status,
    retry_after_or,
    retry_after_seconds,
)


@pytest.fixture
def api(ops):
    app = create_app(ops.runtime)
    app.include_router(runs_api.router)
    server, _ = create_api_key(ops.runtime.db, tenant="t1", role="server")
    stranger, _ = create_api_key(ops.runtime.db, tenant="t1", role="user", owner="someone-else")
    with TestClient(app) as client:
        yield client, {"Authorization": f"Bearer {server}"}, {"Authorization": f"Bearer {stranger}"}


async def test_runs_api_inline_queued_read_cancel_and_scoping(ops, api) -> None:
    client, server, stranger = api
    integration = ops.connect()
    sent: list[str] = []
    ops.runtime.executor.enqueue = lambda run_id, delay, limit: sent.append(run_id)

    inline = client.post(f"/v1/integrations/{integration}/operations/Ping", headers=server, json={})
    assert inline.status_code == 200
    assert inline.json()["result"] == {"ok": True} and inline.json()["run"]["status"] == "succeeded"

    queued = client.post(
        f"/v1/integrations/{integration}/operations/Echo", headers=server, json={"config": {"value": "q"}}
    )
    assert queued.status_code == 202
    run_id = queued.json()["run_id"]
    assert sent == [run_id]

    got = client.get(f"/v1/runs/{run_id}", headers=server)
    assert got.status_code == 200 and got.json()["status"] == "queued" and got.json()["config"] == {"value": "q"}
    assert set(got.json()) == set(inline.json()["run"])  # one run-record shape

    listed = client.get(f"/v1/integrations/{integration}/runs", headers=server)
    assert {r["id"] for r in listed.json()["runs"]} == {run_id, inline.json()["run"]["id"]}

    invalid = client.post(
        f"/v1/integrations/{integration}/operations/Flaky", headers=server, json={"config": {"fail_times": "no"}}
    )
    assert invalid.status_code == 422 and invalid.json()["error"]["code"] == "invalid_input"

    for url in (f"/v1/runs/{run_id}", f"/v1/integrations/{integration}/runs"):
        hidden = client.get(url, headers=stranger)
        assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "not_found"
    assert client.post(f"/v1/runs/{run_id}/cancel", headers=stranger).status_code == 404
    assert client.post(f"/v1/integrations/{integration}/operations/Ping", headers=stranger).status_code == 404
    assert client.get(f"/v1/runs/{run_id}").status_code == 401

    cancelled = client.post(f"/v1/runs/{run_id}/cancel", headers=server)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    outcome = await ops.runtime.executor.execute(run_id)  # the message arrives after the cancel: nothing runs
    assert outcome.skipped and ops.run(run_id).attempts == 0


def test_runs_list_pages_newest_first_with_a_stable_cursor(ops, api) -> None:
    client, server, _ = api
    integration = ops.connect()
    sent: list[str] = []
    ops.runtime.executor.enqueue = lambda run_id, delay, limit: sent.append(run_id)
    for n in range(7):
        response = client.post(
            f"/v1/integrations/{integration}/operations/Echo", headers=server, json={"config": {"value": str(n)}}
        )
        assert response.status_code == 202
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"/v1/integrations/{integration}/runs", headers=server, params=params).json()
        seen += [r["id"] for r in page["runs"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        # A run added between pages does not shift the older pages (keyset, not offset).
        client.post(f"/v1/integrations/{integration}/operations/Echo", headers=server, json={"config": {"value": "x"}})
    assert pages == 3
    assert sorted(seen) == sorted(sent[:7])  # every run of the first seven once; the later ones are newer
    assert len(set(seen)) == 7
    queued_at = [ops.run(run_id).queued_at for run_id in seen]
    assert queued_at == sorted(queued_at, reverse=True)

    filtered = client.get(f"/v1/integrations/{integration}/runs", headers=server, params={"status": "succeeded"})
    assert filtered.json() == {"runs": [], "next_cursor": None}
    bad = client.get(f"/v1/integrations/{integration}/runs", headers=server, params={"cursor": "%%%"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_cursor"


def _json_response(body, *, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers, request=httpx.Request("GET", "https://p.example/x"))


async def test_cursor_pagination_and_repeated_cursor_guard() -> None:
    pages = {None: ([1, 2], "c1"), "c1": ([3], "c2"), "c2": ([4], "c1")}

    async def fetch(request: PageRequest) -> httpx.Response:
        items, cursor = pages[request.cursor]
        return _json_response({"items": items, "next_cursor": cursor})

    seen: list[int] = []
    with pytest.raises(PaginationLoop):
        async for page in paginate(fetch, style=CursorPages()):
            seen.extend(page.items)
    assert seen == [1, 2, 3, 4]


async def test_identical_page_guard_and_page_cap() -> None:
    async def same(request: PageRequest) -> Page:
        return Page([{"id": 1}], next=f"c{request.number}")

    with pytest.raises(PaginationLoop):
        async for _ in paginate(same, style=CursorPages()):
            pass

    async def endless(request: PageRequest) -> Page:
        return Page([request.number], next=f"c{request.number}")

    with pytest.raises(PaginationLimit):
        async for _ in paginate(endless, style=CursorPages(), max_pages=5):
            pass

    ticks = iter(range(0, 1000, 10))
    with pytest.raises(PaginationLimit):
        async for _ in paginate(endless, style=CursorPages(), max_seconds=25, clock=lambda: float(next(ticks))):
            pass


async def test_link_and_offset_pagination() -> None:
    async def linked(request: PageRequest) -> httpx.Response:
        n = int((request.url or "https://p.example/items?page=1").rsplit("=", 1)[1])
        link = {"Link": f'<https://p.example/items?page={n + 1}>; rel="next"'} if n < 3 else {}
        return _json_response([n], headers=link)

    got = [p.items async for p in paginate(linked, style=LinkPages(url="https://p.example/items?page=1"))]
    assert got == [[1], [2], [3]]

    data = list(range(7))

    async def offset(request: PageRequest) -> httpx.Response:
        return _json_response({"items": data[request.offset : request.offset + request.limit]})

    got = [p.items async for p in paginate(offset, style=OffsetPages(), limit=3)]
    assert got == [[0, 1, 2], [3, 4, 5], [6]]


async def test_rate_limits_become_typed_errors() -> None:
    async def limited(request: PageRequest) -> httpx.Response:
        return _json_response({"message": "slow down, token abc"}, status=429, headers={"Retry-After": "7"})

    with pytest.raises(RateLimited) as caught:
        async for _ in paginate(limited, style=CursorPages()):
            pass
    assert caught.value.retry_after == 7 and "abc" not in caught.value.message
    with pytest.raises(TransientProviderError):
        check_response(_json_response({}, status=503))
    now = datetime(2026, 1, 1, tzinfo=UTC)
    later = (now + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert retry_after_seconds({"Retry-After": later}, now=now) == 30
    assert retry_after_seconds({"X-RateLimit-Reset": str(int(now.timestamp()) + 12)}, now=now) == 12
    assert retry_after_seconds({}) is None


async def test_next_link_pages_read_the_next_url_from_the_body() -> None:
    # Graph's key holds a dot: it is read as it stands, not as the dotted path "@odata" -> "nextLink".
    bodies = {
        "https://graph.example/v1/users": {"value": [1, 2], "@odata.nextLink": "https://graph.example/v1/users?p=2"},
        "https://graph.example/v1/users?p=2": {"value": [3], "@odata.deltaLink": "https://graph.example/delta"},
    }

    async def fetch(request: PageRequest) -> httpx.Response:
        return _json_response(bodies[str(request.url)])

    pages = [p async for p in paginate(fetch, style=NextLinkPages(url="https://graph.example/v1/users"))]
    assert [p.items for p in pages] == [[1, 2], [3]]
    assert pages[-1].next is None and pages[-1].raw["@odata.deltaLink"] == "https://graph.example/delta"

    arm = NextLinkPages(next_path="nextLink")
    assert arm.read({"value": [], "nextLink": "https://arm.example/x?$skipToken=1"}).next == (
        "https://arm.example/x?$skipToken=1")
    with pytest.raises(ProviderError, match="page shape"):
        arm.read({"value": {"not": "a list"}})
    with pytest.raises(ProviderError, match="page shape"):
        arm.read([1, 2])
    # A body that lost its list is an error unless the provider answers an empty list so (Google, ARM): a reconciling
    # sync must not read "nothing there" from a broken answer.
    with pytest.raises(ProviderError, match="page shape"):
        arm.read({"nextLink": None})
    assert NextLinkPages(missing_ok=True).read({}).items == []
    assert CursorPages(items_path="users", cursor_path="nextPageToken", missing_ok=True).read({"kind": "x"}).items == []
    with pytest.raises(ProviderError, match="page shape"):
        CursorPages(items_path="members").read({"ok": True})


async def test_follow_links_resolves_relative_links_and_guards_origin_and_loops() -> None:
    links = {
        "/items": '</items?page=2>; rel="next"',  # relative: resolved against the answer's URL
        "/items?page=2": '<https://p.example/items?limit=5>; rel="next"',  # back to the first page, query included
    }

    def handler(request: httpx.Request) -> httpx.Response:
        key = request.url.raw_path.decode().replace("limit=5&", "").replace("?limit=5", "")
        link = links.get(key)
        return httpx.Response(200, json=[key], headers={"Link": link} if link else {})

    checked: list[int] = []
    async with httpx.AsyncClient(base_url="https://p.example", transport=httpx.MockTransport(handler)) as client:
        pages = follow_links(client, "/items", style=LinkPages(), check=lambda r: checked.append(r.status_code),
                             what="P pagination of /items", params={"limit": 5})
        seen = []
        with pytest.raises(PaginationLoop, match="P pagination of /items loops back"):
            async for page in pages:
                seen.extend(page.items)
        assert seen == ["/items", "/items?page=2"] and checked == [200, 200]

        links["/items"] = '<https://evil.example/items?page=2>; rel="next"'
        with pytest.raises(ProviderError, match="points to another origin"):
            async for _ in follow_links(client, "/items", style=LinkPages(), check=lambda r: None, what="P"):
                pass


def _answer(status: int, body: object = None, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers, request=httpx.Request("GET", "https://p.example/x"))


def test_raise_for_status_describes_a_provider_conventions() -> None:
    raise_for_status(_answer(200, {}), "P")
    with pytest.raises(ProviderError) as plain:
        raise_for_status(_answer(429, headers={"Retry-After": "9"}), "P")
    assert (type(plain.value), plain.value.code, plain.value.provider_status, plain.value.retry_after) == (
        ProviderError, "rate_limited", 429, 9.0)
    with pytest.raises(RateLimited) as typed:
        raise_for_status(_answer(429), "P", typed=True, retry_after=retry_after_or(30.0))
    assert typed.value.retry_after == 30.0 and typed.value.status == 429
    with pytest.raises(TransientProviderError):
        raise_for_status(_answer(503), "P", transient=True)
    with pytest.raises(ProviderError) as untyped:
        raise_for_status(_answer(503), "P")
    assert type(untyped.value) is ProviderError and untyped.value.provider_status == 503

    # An envelope failing with HTTP 200, a 403 meaning "refused", and a documented code named in the message.
    envelope = _answer(200, {"success": False, "errors": [{"code": 10000, "message": "token abc is bad"}]})
    with pytest.raises(ProviderError) as refused:
        raise_for_status(envelope, "P", is_error=lambda r: r.json()["success"] is False,
                         is_unauthorized=lambda r: r.json()["errors"][0]["code"] == 10000,
                         detail=lambda r: f"code {r.json()['errors'][0]['code']}")
    assert refused.value.code == "unauthorized" and "code 10000" in str(refused.value)
    assert "abc" not in str(refused.value)
    with pytest.raises(ProviderError) as forbidden:
        raise_for_status(_answer(403), "P", is_unauthorized=lambda r: r.status_code in (401, 403))
    assert forbidden.value.code == "unauthorized"


def test_bearer_auth_sends_the_scheme_and_the_current_token() -> None:
    request = httpx.Request("GET", "https://p.example/x")
    next(BearerAuth("t0k").sync_auth_flow(request))
    assert request.headers["Authorization"] == "Bearer t0k"
    next(BearerAuth("t0k", scheme="SSWS").sync_auth_flow(request))
    assert request.headers["Authorization"] == "SSWS t0k"
    tokens = iter(["first", "second"])
    renewed = BearerAuth(lambda: next(tokens))
    next(renewed.sync_auth_flow(request))
    next(renewed.sync_auth_flow(request))
    assert request.headers["Authorization"] == "Bearer second"
    assert "t0k" not in repr(BearerAuth("t0k"))


async def test_client_secret_auth_mints_once_and_maps_a_refusal() -> None:
    minted: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            form = dict(httpx.QueryParams(request.content.decode()))
            minted.append(form)
            if form["client_secret"] != "s3cret":
                return httpx.Response(401, json={"error": "invalid_client", "error_description": "AADSTS7000215"})
            return httpx.Response(200, json={"access_token": "at-1", "expires_in": 3600})
        return httpx.Response(200, json={"auth": request.headers["Authorization"]})

    def auth(secret: str) -> ClientSecretAuth:
        return ClientSecretAuth(token_url="https://login.example/token", client_id="app", client_secret=secret,
                                scope="api/.default", provider="P", refused="P refused the app", check=lambda r: None)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler), auth=auth("s3cret")) as client:
        answers = [(await client.get("https://api.example/x")).json() for _ in range(2)]
    assert answers == [{"auth": "Bearer at-1"}] * 2
    assert minted == [{"client_id": "app", "client_secret": "s3cret", "scope": "api/.default",
                       "grant_type": "client_credentials"}]
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler), auth=auth("wrong")) as client:
        with pytest.raises(ProviderError) as refused:
            await client.get("https://api.example/x")
    assert (refused.value.code, refused.value.provider_status) == ("unauthorized", 401)
    assert "AADSTS" not in str(refused.value) and "wrong" not in str(refused.value)


async def test_reading_a_run_can_wait_for_it_to_finish(ops, api) -> None:
    """``?wait=`` answers once the run is finished; a queued run whose wait runs out is answered as it is."""
    client, server, _ = api
    integration = ops.connect()
    gate = threading.Event()

    def work(run_id: str) -> None:
        gate.wait(30)
        asyncio.run(ops.runtime.executor.execute(run_id))

    ops.runtime.executor.enqueue = lambda run_id, delay, limit: threading.Thread(target=work, args=(run_id,)).start()
    run_id = client.post(f"/v1/integrations/{integration}/operations/Echo", headers=server, json={}).json()["run_id"]

    assert client.get(f"/v1/runs/{run_id}", headers=server).json()["status"] == "queued"
    assert client.get(f"/v1/runs/{run_id}", headers=server, params={"wait": 0.3}).json()["status"] == "queued"
    gate.set()
    done = client.get(f"/v1/runs/{run_id}", headers=server, params={"wait": 30})
    assert done.status_code == 200 and done.json()["status"] == "succeeded"

    for bad in ("-1", "61", "nan", "inf", "٣", "1²"):
        answer = client.get(f"/v1/runs/{run_id}", headers=server, params={"wait": bad})
        assert answer.status_code == 422, bad
        assert answer.json()["error"]["code"] == "invalid_input"
