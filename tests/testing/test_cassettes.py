"""Cassettes (vcrpy's format, read by vcrpy itself), scrubbing, and replay at the egress seam."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from vcr.serialize import deserialize
from vcr.serializers import yamlserializer

from engine.kit.egress import LOOPBACK_ENV, egress_client, egress_sync_client, tapped
from engine.testing.cassettes import CassetteError, Interaction, Request, Response, dump, load, load_cassette
from engine.testing.replay import CassetteMiss, RecordingTap, ReplayTap
from engine.testing.scrub import SCRUBBED, credential_name, scrub_interactions
from support.recordings import CASSETTES
from support.replay import Answer, replay_server


def _interaction(url: str, body: object = None, status: int = 200, **headers: str) -> Interaction:
    raw = {k.replace("_", "-"): [v] for k, v in headers.items()}
    content = json.dumps(body).encode() if body is not None else b""
    return Interaction(Request("GET", url, raw), Response(status, {"Content-Type": ["application/json"]}, content))


def test_every_committed_cassette_is_read_by_vcrpy_the_same() -> None:
    files = sorted(CASSETTES.rglob("*.yaml"))
    assert files
    for path in files:
        requests, responses, metadata = deserialize(path.read_text(), yamlserializer)
        ours = load_cassette(path)
        assert [(r.method, r.uri) for r in requests] == [(i.request.method, i.request.url) for i in ours.interactions]
        assert [r["status"]["code"] for r in responses] == [i.response.status for i in ours.interactions]
        assert [r["body"]["string"] for r in responses] == [i.response.content for i in ours.interactions]
        assert metadata == ours.metadata


def test_dump_and_load_round_trip_with_parsed_bodies(tmp_path: Path) -> None:
    path = dump(
        [_interaction("https://api.example/items?page=2", {"items": [1, 2]})], tmp_path / "c.yaml", {"definition": "x"}
    )
    (item,) = load(path)
    assert item.response.body == {"items": [1, 2]}
    assert item.request.query == [("page", "2")] and item.request.path == "/items"
    assert load_cassette(path).metadata == {"definition": "x"}


@pytest.mark.parametrize(
    "text",
    [
        "interactions: 3\nversion: 1\n",
        "[1, 2]\n",
        "interactions: []\nversion: 2\n",
        "interactions:\n- request: {}\n  response: {}\nversion: 1\n",
        "a: [\n",
    ],
)
def test_a_malformed_cassette_names_the_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(CassetteError) as caught:
        load(path)
    assert str(path) in str(caught.value)


def test_scrubbing_covers_known_values_headers_fields_and_queries() -> None:
    secret = "s3cr3t-value-from-the-slot"
    item = Interaction(
        Request(
            "POST",
            f"https://api.example/x?access_token=abc&page_token=keep&q={secret}",
            {"Authorization": ["Bearer abc"], "X-Api-Key": ["k"], "X-Trace": [secret]},
            b"grant_type=refresh_token&refresh_token=r1&client_id=public",
        ),
        Response(
            200,
            {"Content-Type": ["application/json"]},
            json.dumps(
                {"access_token": "t", "nextPageToken": "n", "note": f"is {secret}", "nested": [{"client_secret": "c"}]}
            ).encode(),
        ),
    )
    item = replace_form(item)
    (clean,) = scrub_interactions([item], [secret])
    assert clean.request.url == f"https://api.example/x?access_token={SCRUBBED}&page_token=keep&q={SCRUBBED}"
    assert clean.request.headers == {
        "Authorization": f"Bearer {SCRUBBED}",
        "X-Api-Key": SCRUBBED,
        "X-Trace": SCRUBBED,
        "Content-Type": "application/x-www-form-urlencoded",
    }
    assert clean.request.form() == {"grant_type": "refresh_token", "refresh_token": SCRUBBED, "client_id": "public"}
    assert clean.response.body == {
        "access_token": SCRUBBED,
        "nextPageToken": "n",
        "note": f"is {SCRUBBED}",
        "nested": [{"client_secret": SCRUBBED}],
    }
    assert scrub_interactions([clean], [secret]) == [clean]  # scrubbing is idempotent: the suite relies on it


def test_scrubbing_reads_camel_case_credential_names_too() -> None:
    """Google's IAM Credentials answer (``generateAccessToken``) names its token ``accessToken``: a credential, as
    ``access_token`` is; ``nextPageToken`` and ``expireTime`` stay."""
    body = {"accessToken": "ya29.minted", "expireTime": "2099-01-01T00:00:00Z", "nextPageToken": "n", "idToken": "e"}
    item = Interaction(
        Request("POST", "https://iamcredentials.googleapis.com/v1/x:generateAccessToken", {}, b""),
        Response(200, {"Content-Type": ["application/json"]}, json.dumps(body).encode()),
    )
    (clean,) = scrub_interactions([item], [])
    assert clean.response.body == {**body, "accessToken": SCRUBBED, "idToken": SCRUBBED}


def test_camel_case_cursors_stay() -> None:
    """Azure Resource Manager pages with ``$skipToken`` in the next link's query: a cursor, like ``nextPageToken``."""
    url = "https://management.azure.com/subscriptions/s/providers/Microsoft.Security/assessments?$skipToken=eyJ9"
    item = Interaction(Request("GET", url, {}, b""), Response(200, {}, b""))
    (clean,) = scrub_interactions([item], [])
    assert clean.request.url.endswith("skipToken=eyJ9")


def replace_form(item: Interaction) -> Interaction:
    from dataclasses import replace

    headers = {**item.request.raw_headers, "Content-Type": ["application/x-www-form-urlencoded"]}
    return replace(item, request=replace(item.request, raw_headers=headers))


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("access_token", True),
        ("token", True),
        ("client_secret", True),
        ("nextPageToken", False),
        ("sync_token", False),
        ("cursor", False),
        ("id", False),
    ],
)
def test_credential_names(name: str, secret: bool) -> None:
    assert credential_name(name) is secret


def test_replay_matches_method_path_and_query_in_order_whatever_the_host() -> None:
    tap = ReplayTap(
        [
            _interaction("https://api.example/items?limit=2", {"page": 1}),
            _interaction("https://api.example/items?cursor=c2&limit=2", {"page": 2}),
            _interaction(f"https://api.example/me?key={SCRUBBED}", {"me": True}),
        ]
    )

    async def scenario() -> list[object]:
        async with egress_client(base_url="https://other.example") as http:
            first = (await http.get("/items", params={"limit": 2})).json()
            second = (await http.get("/items", params={"limit": 2, "cursor": "c2"})).json()
            me = (await http.get("/me", params={"key": "whatever-the-replay-credential-is"})).json()
            with pytest.raises(CassetteMiss) as missing:
                await http.get("/items", params={"limit": 2})
            assert "GET /items" in str(missing.value) and "3 of 3" in str(missing.value)
            return [first, second, me]

    with tapped(tap):
        assert asyncio.run(scenario()) == [{"page": 1}, {"page": 2}, {"me": True}]
    assert not tap.unplayed() and len(tap.sent) == 4


def test_replay_serves_the_sync_client_too() -> None:
    tap = ReplayTap([_interaction("https://api.example/x", {"ok": 1})])
    with tapped(tap), egress_sync_client() as http:
        assert http.get("https://api.example/x").json() == {"ok": 1}


def test_replay_in_loop_mode_stops_at_its_bound() -> None:
    tap = ReplayTap([_interaction("https://api.example/items", {"next": "c1"})], loop=True, limit=5)

    async def scenario() -> int:
        async with egress_client() as http:
            for n in range(10):
                try:
                    await http.get("https://api.example/items", params={"cursor": "c1"})
                except CassetteMiss:
                    return n
        return -1

    with tapped(tap):
        assert asyncio.run(scenario()) == 5


def test_recording_goes_through_the_guard_and_keeps_the_providers_url(monkeypatch: pytest.MonkeyPatch) -> None:
    def answer(request: object) -> Answer:
        return Answer(200, {"hello": "world"}, {"X-Seen": "yes"})

    # Without loopback allowed the guard refuses the stand-in: the tap does not bypass it.
    monkeypatch.delenv(LOOPBACK_ENV, raising=False)
    with replay_server(answer) as server, tapped(RecordingTap(upstreams={"https://api.example": server.url})):
        with egress_sync_client() as http, pytest.raises(Exception) as refused:
            http.get("https://api.example/x")
        assert "refused" in str(refused.value)
    monkeypatch.setenv(LOOPBACK_ENV, "1")
    with replay_server(answer) as server:
        tap = RecordingTap(upstreams={"https://api.example": server.url})
        with tapped(tap), egress_sync_client() as http:
            assert http.get("https://api.example/x", params={"a": "1"}).json() == {"hello": "world"}
        assert [r.path for r in server.received] == ["/x"]
    (kept,) = tap.interactions
    assert kept.request.url == "https://api.example/x?a=1"
    assert kept.response.body == {"hello": "world"} and kept.response.header("x-seen") == "yes"


def test_scrubbing_covers_aws_temporary_credentials_in_xml_and_the_session_token_header() -> None:
    """STS answers XML (the query protocol): the temporary secret and session token are element texts, scrubbed
    as XML text a parser reads back as the marker; the session token travels again in ``x-amz-security-token``."""
    xml = (
        "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIAEXAMPLE</AccessKeyId>"
        "<SecretAccessKey>wJalrXUtnFEMI/K7MDENG</SecretAccessKey><SessionToken>FwoGZXIvYXdzEXAMPLE==</SessionToken>"
        "<Expiration>2099-01-01T00:00:00Z</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>"
    )
    item = Interaction(
        Request("GET", "https://securityhub.us-east-1.amazonaws.com/accounts", {"X-Amz-Security-Token": ["Fwo=="]}),
        Response(200, {"Content-Type": ["text/xml"]}, xml.encode()),
    )
    (clean,) = scrub_interactions([item], [])
    assert clean.request.headers == {"X-Amz-Security-Token": SCRUBBED}
    from xml.etree import ElementTree

    credentials = ElementTree.fromstring(clean.response.content).find("AssumeRoleResult/Credentials")
    assert credentials is not None
    assert {child.tag: child.text for child in credentials} == {
        "AccessKeyId": "ASIAEXAMPLE",  # an ID, not a secret: kept
        "SecretAccessKey": SCRUBBED,
        "SessionToken": SCRUBBED,
        "Expiration": "2099-01-01T00:00:00Z",
    }
    assert scrub_interactions([clean], []) == [clean]
