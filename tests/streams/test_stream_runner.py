"""The stream runner against a local HTTP server replaying providers' documented listings: one test per pagination
kind (GitHub's Link header, Notion's body cursor with has_more, Jira's offset with a total, Harvest's page numbers),
then each guard: a repeated cursor, an identical page, a page short of what the provider promised, the page cap,
a body without its list, a next link to another origin; and the template form of requests."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr

from engine import Checkpoint, NoConfig, OperationContext, ProviderError
from engine.errors import ValidationFailed
from engine.kit.egress import egress_client
from engine.kit.providerkit import PaginationLimit, PaginationLoop
from engine.kit.streams import PaginationShort, StreamRunner, StreamSpec
from support.cassette_fixtures import response_fixture
from support.stream_definition import BASE, SPEC
from support.stream_server import ProviderApi, fixture

STREAMS = {stream.name: stream for stream in SPEC.streams}  # type: ignore[attr-defined]


def body(name: str) -> Any:
    return fixture(name)["body"]


def drain(
    spec: StreamSpec,
    *,
    cursor: Any = None,
    checkpoint: Any = None,
    user_input: Any = None,
    operator_config: Any = None,
    checkpoints: list[Any] | None = None,
) -> tuple[list[Any], list[Any], OperationContext]:
    """Run a stream as the executor would, with an egress client sending a bearer token; returns the payloads,
    the checkpoints (also appended to ``checkpoints`` as they come) and the context (``next_cursor``)."""
    saved = checkpoints if checkpoints is not None else []

    async def go() -> tuple[list[Any], list[Any], OperationContext]:
        async with egress_client(headers={"Authorization": "Bearer lab-token"}, allow_loopback=True) as client:
            ctx = OperationContext(
                "int_1", "t1", NoConfig(), client, operator_config, user_input, cursor=cursor, checkpoint=checkpoint
            )
            payloads, checkpoints = [], saved
            async for item in StreamRunner(spec, base_url=BASE, provider="Lab").run(ctx):
                (checkpoints if isinstance(item, Checkpoint) else payloads).append(item)
            return payloads, checkpoints, ctx

    return asyncio.run(go())


def test_link_header_pages_are_followed_and_the_incremental_value_is_the_highest(api: ProviderApi) -> None:
    api.answer("/user/repos", "github_repos_page1", "github_repos_page2")
    payloads, checkpoints, ctx = drain(STREAMS["RepoSync"])
    first, second = api.on("/user/repos")
    assert first.query == {"sort": "updated", "since": "2024-01-01T00:00:00Z", "per_page": "2"}
    assert first.authorization == "Bearer lab-token"
    assert second.query == {"per_page": "2", "page": "2"}  # the next link as GitHub wrote it
    assert [p.data["name"] for p in payloads] == ["tether", "billing", "Spoon-Knife"]
    assert {(p.schema, p.variant) for p in payloads} == {("asset", "repository")}
    [saved] = checkpoints
    assert saved.state["position"] == {"url": f"{BASE}/user/repos?per_page=2&page=2"} and saved.state["pages"] == 1
    assert ctx.next_cursor == "2024-05-03T10:00:00Z"


def test_a_stored_incremental_value_is_sent_and_never_goes_back(api: ProviderApi) -> None:
    api.answer("/user/repos", (200, {}, []))
    payloads, _, ctx = drain(STREAMS["RepoSync"], cursor="2024-06-01T00:00:00Z")
    assert api.on("/user/repos")[0].query["since"] == "2024-06-01T00:00:00Z"
    assert payloads == [] and ctx.next_cursor == "2024-06-01T00:00:00Z"


def test_cursor_in_the_body_until_has_more_is_false(api: ProviderApi) -> None:
    api.answer("/v1/search", "notion_search_page1", "notion_search_page2")
    payloads, checkpoints, _ = drain(STREAMS["PageSync"])
    first, second = api.on("/v1/search")
    assert (first.method, first.body) == ("POST", {"filter": {"property": "object", "value": "page"}, "page_size": 2})
    assert second.body == {
        "filter": {"property": "object", "value": "page"},
        "page_size": 2,
        "start_cursor": "e6c6f5ff-c70e-4bcd-a0f6-7b9f3a1e8c04",
    }
    assert [p.data["id"][:8] for p in payloads] == ["59833787", "be633bf1", "b55c9c91"]
    assert [c.state["position"] for c in checkpoints] == [{"cursor": "e6c6f5ff-c70e-4bcd-a0f6-7b9f3a1e8c04"}]


def test_offset_pages_until_the_total_is_reached(api: ProviderApi) -> None:
    api.answer("/rest/api/3/project/search", "jira_projects_page1", "jira_projects_page2")
    payloads, _, _ = drain(STREAMS["ProjectSync"])
    assert [r.query for r in api.on("/rest/api/3/project/search")] == [
        {"startAt": "0", "maxResults": "2"},
        {"startAt": "2", "maxResults": "2"},
    ]
    assert [p.data["key"] for p in payloads] == ["EX", "ABC", "KAN"]


def test_page_numbers_until_the_total_is_reached(api: ProviderApi) -> None:
    api.answer("/v2/contacts", "harvest_contacts_page1", "harvest_contacts_page2")
    payloads, _, _ = drain(STREAMS["ContactSync"])
    assert [r.query for r in api.on("/v2/contacts")] == [{"per_page": "1", "page": "1"}, {"per_page": "1", "page": "2"}]
    assert [p.data["last_name"] for p in payloads] == ["Doe", "Roe"]


def test_a_checkpoint_resumes_at_its_page(api: ProviderApi) -> None:
    api.answer("/v1/search", "notion_search_page1", (503, {}, {"object": "error", "status": 503}))
    interrupted: list[Checkpoint] = []
    with pytest.raises(ProviderError) as failed:
        drain(STREAMS["PageSync"], checkpoints=interrupted)
    assert failed.value.provider_status == 503
    api.reset()
    api.answer("/v1/search", "notion_search_page2")
    payloads, _, _ = drain(STREAMS["PageSync"], checkpoint=interrupted[-1].state)
    [only] = api.on("/v1/search")
    assert only.body["start_cursor"] == "e6c6f5ff-c70e-4bcd-a0f6-7b9f3a1e8c04"
    assert [p.data["id"][:8] for p in payloads] == ["b55c9c91"]


def test_a_checkpoint_of_another_base_is_not_resumed(api: ProviderApi) -> None:
    stale = {
        "v": 1,
        "stream": "RepoSync",
        "base": "2023-01-01T00:00:00Z",
        "position": {"url": f"{BASE}/user/repos?per_page=2&page=2"},
        "pages": 1,
        "fetched": 2,
        "seen": [],
        "last_page": None,
        "high": "2023-01-01T00:00:00Z",
    }
    api.answer("/user/repos", (200, {}, []))
    drain(STREAMS["RepoSync"], cursor="2024-06-01T00:00:00Z", checkpoint=stale)
    assert api.on("/user/repos")[0].query["since"] == "2024-06-01T00:00:00Z"


def test_a_repeated_cursor_ends_the_run_with_an_error_not_a_loop(api: ProviderApi) -> None:
    page1 = body("notion_search_page1")
    page2 = {**body("notion_search_page2"), "next_cursor": page1["next_cursor"], "has_more": True}
    api.answer("/v1/search", (200, {}, page1), (200, {}, page2))
    with pytest.raises(PaginationLoop) as loop:
        drain(STREAMS["PageSync"])
    assert "repeated a cursor" in loop.value.message and "cursor e6c6f5ff" in loop.value.message
    assert loop.value.code == "pagination_loop" and len(api.on("/v1/search")) == 2


def test_an_identical_page_ends_the_run_with_an_error(api: ProviderApi) -> None:
    page = {**body("jira_projects_page1"), "total": 10}
    api.answer("/rest/api/3/project/search", (200, {}, page), (200, {}, page))
    with pytest.raises(PaginationLoop) as loop:
        drain(STREAMS["ProjectSync"])
    assert "identical page" in loop.value.message and "page 2 repeats page 1" in loop.value.message


def test_has_more_without_a_cursor_is_not_the_end(api: ProviderApi) -> None:
    api.answer("/v1/search", (200, {}, {**body("notion_search_page1"), "next_cursor": None}))
    with pytest.raises(PaginationShort) as short:
        drain(STREAMS["PageSync"])
    assert short.value.code == "pagination_short" and "has_more" in short.value.message


def test_a_listing_that_ends_below_its_total_is_not_the_end(api: ProviderApi) -> None:
    page2 = {**body("jira_projects_page2"), "values": [], "total": 5}
    api.answer("/rest/api/3/project/search", (200, {}, {**body("jira_projects_page1"), "total": 5}), (200, {}, page2))
    with pytest.raises(PaginationShort) as short:
        drain(STREAMS["ProjectSync"])
    assert "counts 5 records" in short.value.message and "after 2" in short.value.message


def test_the_deployment_page_cap_applies(api: ProviderApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_STREAM_MAX_PAGES", "1")
    api.answer("/v1/search", "notion_search_page1", "notion_search_page2")
    with pytest.raises(PaginationLimit) as capped:
        drain(STREAMS["PageSync"])
    assert "after 1 pages" in capped.value.message and len(api.on("/v1/search")) == 1


def test_a_body_without_its_list_is_an_error_not_an_empty_page(api: ProviderApi) -> None:
    api.answer("/v1/search", (200, {}, {"object": "list", "has_more": False}))
    with pytest.raises(ProviderError) as failed:
        drain(STREAMS["PageSync"])
    assert "no list of records at 'results'" in failed.value.message


def test_a_next_link_to_another_origin_is_refused(api: ProviderApi) -> None:
    api.answer("/user/repos", (200, {"Link": '<https://elsewhere.example/user/repos?page=2>; rel="next"'}, []))
    with pytest.raises(ProviderError) as refused:
        drain(
            STREAMS["RepoSync"].model_copy(
                update={"incremental": None, "request": STREAMS["RepoSync"].request.model_copy(update={"params": {}})}
            )
        )
    assert "another origin" in refused.value.message


def test_a_rate_limit_is_rate_limited_with_its_retry_after(api: ProviderApi) -> None:
    api.answer("/user/repos", "github_secondary_rate_limit")
    with pytest.raises(ProviderError) as limited:
        drain(STREAMS["RepoSync"])
    assert (limited.value.code, limited.value.retry_after, limited.value.provider_status) == ("rate_limited", 7.0, 429)


class TeamInput(BaseModel):
    team: str | None = None
    label: str | None = None


class LabConfig(BaseModel):
    region: str = "eu"
    api_key: SecretStr = SecretStr("k")


def templated(**request: Any) -> StreamSpec:
    return StreamSpec.model_validate({"name": "TeamSync", "request": request, "schema": "asset", "map": "{}"})


def test_templates_fill_from_user_input_and_config_and_leave_out_what_is_missing(api: ProviderApi) -> None:
    api.answer("/teams/a%2Fb%20c/members", (200, {}, []))
    spec = templated(
        path="/teams/{input.team}/members",
        params={"region": "{config.region}", "label": "{input.label}", "note": "x{{y}}"},
    )
    drain(spec, user_input=TeamInput(team="a/b c"), operator_config=LabConfig())
    [seen] = api.on("/teams/a%2Fb%20c/members")
    assert seen.query == {"region": "eu", "note": "x{y}"}  # label has no value: left out; a / cannot add a segment


def test_a_secret_cannot_be_templated_into_a_request(api: ProviderApi) -> None:
    with pytest.raises(ValidationFailed) as refused:
        drain(templated(path="/teams", headers={"X-Key": "{config.api_key}"}), operator_config=LabConfig())
    assert "is a secret" in refused.value.message and api.requests == []


@pytest.mark.parametrize(
    ("request_part", "complaint"),
    [
        ({"path": "/x", "params": {"a": "{secrets.token}"}}, "unknown placeholder"),
        ({"path": "/x", "params": {"a": "{incremental}"}}, "needs an [incremental]"),
        ({"path": "/x/{input}"}, "names a field"),
        ({"path": "/x", "params": {"a": "{unclosed"}}, "unclosed"),
        ({"path": "x"}, "starting with /"),
    ],
)
def test_bad_templates_are_refused_when_the_file_is_read(request_part: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValueError) as refused:
        templated(**request_part)
    assert complaint in str(refused.value)


def test_incremental_declares_exactly_one_source() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        StreamSpec.model_validate(
            {
                "name": "S",
                "request": {"path": "/x"},
                "schema": "asset",
                "map": "{}",
                "incremental": {"cursorField": "a", "tokenPath": "b"},
            }
        )


GOOGLE = Path(__file__).resolve().parents[1] / "fixtures" / "google_calendar"
#: Google Calendar's event list as a Python definition would declare it: page tokens within a run, and the
#: ``nextSyncToken`` of the last page as the provider token the next run sends.
EVENTS = StreamSpec.model_validate(
    {
        "name": "EventSync",
        "request": {"path": "/calendars/primary/events", "params": {"maxResults": "250", "syncToken": "{incremental}"}},
        "records": "items",
        "pagination": {"kind": "cursor", "cursorPath": "nextPageToken", "param": "pageToken"},
        "incremental": {"tokenPath": "nextSyncToken"},
        "schema": "calendar_event",
        "variant": "event",
        "map": "{}",
    }
)


def google(name: str) -> tuple[int, dict[str, str], Any]:
    record = response_fixture(GOOGLE, name)
    return record["status"], record["headers"], record["body"]


def test_a_provider_token_from_the_last_page_is_the_next_runs_start(api: ProviderApi) -> None:
    api.answer("/calendars/primary/events", google("events_page1"), google("events_page2"))
    payloads, _, ctx = drain(EVENTS)
    first, second = api.on("/calendars/primary/events")
    assert first.query == {"maxResults": "250"}  # no token yet: a full sync
    assert second.query == {"maxResults": "250", "pageToken": "EjsKKzRlYWhz"}
    assert len(payloads) == 2 and ctx.next_cursor == "CPDAlvWDx70CEPDAlvWDx70CGAU="

    api.reset()
    api.answer("/calendars/primary/events", google("events_incremental"))
    _, _, later = drain(EVENTS, cursor=ctx.next_cursor)
    assert api.on("/calendars/primary/events")[0].query["syncToken"] == "CPDAlvWDx70CEPDAlvWDx70CGAU="
    assert later.next_cursor == "CJiwnbWGx70CEJiwnbWGx70CGAU="


def test_a_last_page_without_its_token_fails_instead_of_restarting_silently(api: ProviderApi) -> None:
    status, headers, page = google("events_page2")
    api.answer("/calendars/primary/events", (status, headers, {**page, "nextSyncToken": None}))
    with pytest.raises(ProviderError) as failed:
        drain(EVENTS)
    assert "'nextSyncToken'" in failed.value.message


def test_a_next_link_back_to_the_first_page_is_a_repeated_cursor(api: ProviderApi) -> None:
    looping = '<{base}/user/repos?per_page=2>; rel="next"'
    api.answer("/user/repos", (200, {"Link": looping}, body("github_repos_page1")))
    spec = STREAMS["RepoSync"].model_copy(
        update={"incremental": None, "request": STREAMS["RepoSync"].request.model_copy(update={"params": {}})}
    )
    with pytest.raises(PaginationLoop) as loop:
        drain(spec)
    assert "repeated a cursor" in loop.value.message and len(api.on("/user/repos")) == 1
