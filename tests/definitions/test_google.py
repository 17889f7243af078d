"""Google (definition ``google``): the Gmail and Drive syncs and their mappings, over HTTP to a local server on
127.0.0.1 that serves Gmail v1 / Drive v3 as Google documents them (``support.google_apis``), and the fixtures checked
against Google's own discovery schemas (Gmail v1, Drive v3: the versions the client calls).

The shared connection and the Calendar → Calendar+Gmail upgrade against a real OAuth server are in
``test_google_connection.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from pydantic import SecretStr

from definitions.google import definition
from definitions.google.gmail import HEADERS
from definitions.google.operations import FilesSync, MessagesSync, MessagesSyncConfig
from definitions.google.products import CALENDAR_READ, DRIVE_METADATA, GMAIL, GMAIL_METADATA
from engine import ClientContext, DefinitionError, OperationContext, Payload, ProviderError
from engine.authoring.connections import granted_products, missing_product_scopes
from engine.catalog.registry import Registry
from engine.kit.egress import LOOPBACK_ENV
from ingest.pipeline import IngestContext, IngestPipeline
from support.google_apis import GoogleState, app, fixture
from support.server import free_port, serve

OP = {o.operation_id(): o for o in definition.operations}
SLOT = definition.slots[0]


@pytest.fixture(autouse=True)
def _loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOOPBACK_ENV, "1")


@pytest.fixture
def google() -> Iterator[tuple[GoogleState, str]]:
    state = GoogleState.from_fixtures()
    with serve(app(state), free_port()) as base:
        yield state, base


def run(base: str, name: str, config: Any = None, cursor: Any = None) -> tuple[list[Payload], OperationContext]:
    """Run one of the definition's ingest operations against the local server; the payloads and the context."""
    op = OP[name]
    operator = definition.operator_config(  # type: ignore[misc]
        client_id=SecretStr("client"), client_secret=SecretStr("secret"), api_root=f"{base}/"
    )
    slot = SLOT.model_validate({"access_token": "ya29.local", "scopes": [GMAIL_METADATA, DRIVE_METADATA]})
    ctx = OperationContext("int_1", "t", config or op.config(), None, operator, None, cursor=cursor)

    async def go() -> list[Payload]:
        async with definition.clients[0]().build(ClientContext("int_1", slot, operator, None)) as client:
            ctx.client = client
            return [p async for p in op().ingest(ctx)]

    return asyncio.run(go()), ctx


def collect(base: str, name: str, cursor: Any = None) -> tuple[list[Payload], OperationContext, ProviderError]:
    """Run an operation that is expected to fail part way: what it yielded before, and the error."""
    op = OP[name]
    operator = definition.operator_config(  # type: ignore[misc]
        client_id=SecretStr("client"), client_secret=SecretStr("secret"), api_root=base
    )
    slot = SLOT.model_validate({"access_token": "ya29.local", "scopes": []})
    ctx = OperationContext("int_1", "t", op.config(), None, operator, None, cursor=cursor)
    seen: list[Payload] = []

    async def go() -> None:
        async with definition.clients[0]().build(ClientContext("int_1", slot, operator, None)) as client:
            ctx.client = client
            async for payload in op().ingest(ctx):
                seen.append(payload)

    with pytest.raises(ProviderError) as raised:
        asyncio.run(go())
    return seen, ctx, raised.value


def ids(payloads: list[Payload]) -> list[tuple[str, str]]:
    return [(p.variant, p.data.get("id") or p.data.get("fileId")) for p in payloads]


# -- the definition --------------------------------------------------------------------------------------------


def test_one_connection_three_products() -> None:
    Registry().register(definition)
    (connection,) = definition.connections
    auth = connection.auth
    assert [p.id for p in auth.products] == ["calendar", "gmail", "drive"]  # type: ignore[attr-defined]
    assert CALENDAR_READ in auth.scopes and GMAIL_METADATA not in auth.scopes  # type: ignore[attr-defined]
    params = dict(auth.extra_authorize_params)  # type: ignore[attr-defined]
    assert params["include_granted_scopes"] == "true" and params["access_type"] == "offline"
    assert {o.operation_id(): o.policy.product for o in definition.operations if o.policy.reconcile} == {
        "EventsSync": "calendar",
        "MessagesSync": "gmail",
        "FilesSync": "drive",
    }
    # What a grant covers is read from its scopes, product by product.
    base = ["openid", "email", CALENDAR_READ]
    assert granted_products(auth, base) == ["calendar"]
    assert granted_products(auth, [*base, GMAIL_METADATA]) == ["calendar", "gmail"]
    assert missing_product_scopes(auth, "gmail", base) == (GMAIL_METADATA,)


def test_products_are_checked_at_registration() -> None:
    unknown = type("MessagesSync", (OP["MessagesSync"],), {"policy": replace(MessagesSync.policy, product="photos")})
    others = tuple(o for o in definition.operations if o.operation_id() != "MessagesSync")
    with pytest.raises(DefinitionError) as refused:
        Registry().register(replace(definition, operations=(*others, unknown)))
    assert refused.value.rule == "known_product"
    (connection,) = definition.connections
    twice = type(
        connection.__name__,
        (connection,),
        {"auth": replace(connection.auth, products=(*connection.auth.products, GMAIL))},
    )  # type: ignore[attr-defined]
    with pytest.raises(DefinitionError) as refused:
        Registry().register(replace(definition, connections=(twice,)))
    assert refused.value.rule == "known_product"


def test_api_root_is_https_or_loopback_only() -> None:
    config = definition.operator_config
    secrets = {"client_id": SecretStr("c"), "client_secret": SecretStr("s")}
    assert config(**secrets, api_root="http://127.0.0.1:9/").api_root == "http://127.0.0.1:9"  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="https, or http on loopback"):
        config(**secrets, api_root="http://google.example/")


# -- Gmail -----------------------------------------------------------------------------------------------------


def test_gmail_full_sync_reads_metadata_newest_first_and_checkpoints_the_profiles_history_id(google: Any) -> None:
    state, base = google
    state.page_cap = 2  # Google may answer fewer than maxResults: three messages take two pages
    payloads, ctx = run(base, "MessagesSync")
    assert [i for _, i in ids(payloads)] == ["19ad2f4e8b6c0a13", "19ad2f4e8b6c0a12", "19ad2f4e8b6c0a11"]
    assert ctx.next_cursor == {"history_id": "4321004"}
    paths = [p for p, _ in state.requests]
    assert paths[0] == "/gmail/v1/users/me/profile"  # taken before listing, so changes meanwhile are replayed
    listings = [dict(q) for q in state.queries("/gmail/v1/users/me/messages") if "maxResults" in dict(q)]
    assert [q.get("pageToken") for q in listings] == [None, "o2"]
    gets = [q for p, q in state.requests if p.startswith("/gmail/v1/users/me/messages/")]
    assert len(gets) == 3
    for query in gets:  # never a body: format=metadata with exactly the headers the record needs
        assert dict(query)["format"] == "metadata"
        assert [v for k, v in query if k == "metadataHeaders"] == list(HEADERS)
    assert payloads[2].data["payload"]["headers"][0] == {"name": "From", "value": "Ada Lovelace <ada@example.com>"}


def test_gmail_full_sync_reads_at_most_max_messages(google: Any) -> None:
    _, base = google
    payloads, ctx = run(base, "MessagesSync", MessagesSyncConfig(max_messages=2))
    assert ids(payloads) == [("email", "19ad2f4e8b6c0a13"), ("email", "19ad2f4e8b6c0a12")]
    assert ctx.next_cursor == {"history_id": "4321004"}


def test_gmail_partial_sync_follows_the_history_from_the_checkpoint(google: Any) -> None:
    state, base = google
    state.gmail_changes()
    state.page_cap = 1  # one history record a page: three pages
    payloads, ctx = run(base, "MessagesSync", cursor={"history_id": "4321004"})
    assert ids(payloads) == [
        ("email", "19ad2f4e8b6c0a14"),  # added
        ("email", "19ad2f4e8b6c0a11"),  # read: UNREAD removed, so it is read again
        ("deleted", "19ad2f4e8b6c0a13"),
    ]
    assert "UNREAD" not in payloads[1].data["labelIds"]
    assert ctx.next_cursor == {"history_id": "4321010"}
    history = state.queries("/gmail/v1/users/me/history")
    assert [dict(q)["startHistoryId"] for q in history] == ["4321004"] * 3
    assert [v for k, v in history[0] if k == "historyTypes"] == [
        "messageAdded",
        "messageDeleted",
        "labelAdded",
        "labelRemoved",
    ]
    assert not any(p == "/gmail/v1/users/me/messages" for p, _ in state.requests)  # no listing: history only


def test_gmail_partial_sync_with_no_changes_keeps_the_mailboxs_history_id(google: Any) -> None:
    _, base = google
    payloads, ctx = run(base, "MessagesSync", cursor={"history_id": "4321004"})
    assert payloads == [] and ctx.next_cursor == {"history_id": "4321004"}


def test_gmail_expired_history_id_falls_back_to_a_full_sync(google: Any) -> None:
    state, base = google
    state.gmail_changes()
    payloads, ctx = run(base, "MessagesSync", cursor={"history_id": "3999999"})  # older than Gmail keeps: 404
    assert [p for p, _ in state.requests][:2] == ["/gmail/v1/users/me/history", "/gmail/v1/users/me/profile"]
    assert {i for _, i in ids(payloads)} == {"19ad2f4e8b6c0a11", "19ad2f4e8b6c0a12", "19ad2f4e8b6c0a14"}
    assert ctx.next_cursor == {"history_id": "4321010"}


def test_gmail_rate_limit_mid_sync_is_rate_limited_and_leaves_no_checkpoint(google: Any) -> None:
    state, base = google
    state.page_cap = 2
    state.fail("/gmail/v1/users/me/messages/19ad2f4e8b6c0a11")  # the read of the second page's message: 429
    seen, ctx, error = collect(base, "MessagesSync")
    assert (error.code, error.retry_after) == ("rate_limited", 7.0)
    assert ids(seen) == [("email", "19ad2f4e8b6c0a13"), ("email", "19ad2f4e8b6c0a12")]
    assert ctx.next_cursor is None  # the engine keeps the previous checkpoint: the retry starts over
    payloads, ctx = run(base, "MessagesSync")
    assert len(payloads) == 3 and ctx.next_cursor == {"history_id": "4321004"}


def test_gmail_quota_403_is_a_rate_limit_and_a_message_deleted_meanwhile_a_tombstone(google: Any) -> None:
    state, base = google
    state.gmail_changes()
    state.history.append(
        {
            "id": "4321009",
            "labelsAdded": [
                {"message": {"id": "19ad2f4e8b6c0a99", "threadId": "19ad2f4e8b6c0a99"}, "labelIds": ["STARRED"]}
            ],
        }
    )
    payloads, _ = run(base, "MessagesSync", cursor={"history_id": "4321004"})
    assert ("deleted", "19ad2f4e8b6c0a99") in ids(payloads)  # relabelled, then gone before it was read (404)


# -- Drive -----------------------------------------------------------------------------------------------------


def test_drive_full_sync_takes_the_start_token_before_listing(google: Any) -> None:
    state, base = google
    state.page_cap = 3
    payloads, ctx = run(base, "FilesSync")
    assert [i for _, i in ids(payloads)] == [f["id"] for f in fixture("drive")["files"]]
    assert ctx.next_cursor == {"page_token": "8812"}
    paths = [p for p, _ in state.requests]
    assert paths == ["/drive/v3/changes/startPageToken", "/drive/v3/files", "/drive/v3/files"]
    fields = dict(state.queries("/drive/v3/files")[0])["fields"]
    assert fields.startswith("nextPageToken,files(id,name,mimeType,owners(") and "webViewLink" in fields


def test_drive_changes_sync_interrupted_then_resumed_from_its_checkpoint(google: Any) -> None:
    state, base = google
    state.drive_changes()
    state.page_cap = 1
    state.fail("/drive/v3/changes", after=2)  # the third page of changes answers 429
    seen, ctx, error = collect(base, "FilesSync", cursor={"page_token": "8812"})
    assert error.code == "rate_limited"
    assert ids(seen) == [("file", "1xYz_docPlan"), ("file", "1nEw_imgDiagram")]
    assert ctx.next_cursor is None
    # The checkpoint was not advanced, so the retry reads the change log from the same token, to its end.
    payloads, ctx = run(base, "FilesSync", cursor={"page_token": "8812"})
    assert ids(payloads) == [("file", "1xYz_docPlan"), ("file", "1nEw_imgDiagram"), ("removed", "1pQr_pdfNotes")]
    assert payloads[0].data["name"] == "Engine plan (v2)"
    assert ctx.next_cursor == {"page_token": "8816"}
    tokens = [dict(q)["pageToken"] for q in state.queries("/drive/v3/changes")]
    assert tokens == ["8812", "8813", "8814", "8812", "8813", "8814", "8815"]
    again, ctx = run(base, "FilesSync", cursor={"page_token": "8816"})
    assert again == [] and ctx.next_cursor == {"page_token": "8816"}


def test_drive_unknown_page_token_falls_back_to_a_full_listing(google: Any) -> None:
    _, base = google
    payloads, ctx = run(base, "FilesSync", cursor={"page_token": "17"})
    assert len(payloads) == 4 and ctx.next_cursor == {"page_token": "8812"}


# -- mappings --------------------------------------------------------------------------------------------------


def _pipeline() -> tuple[IngestPipeline, IngestContext]:
    registry = Registry()
    registry.register(definition)
    emits = [e for o in (MessagesSync, FilesSync) for e in o.emits]
    return IngestPipeline(registry), IngestContext("t", "int_1", "google", emits=emits)


def mapped(schema: str, variant: str, data: dict[str, Any]) -> dict[str, Any]:
    pipeline, ctx = _pipeline()
    outcome = pipeline.evaluate(ctx, Payload(schema, data, variant=variant))
    assert outcome.status == "mapped", outcome.reason
    assert outcome.object is not None
    return outcome.object.model_dump(mode="json", exclude_none=True)


def test_message_mapping_of_a_metadata_message() -> None:
    message = fixture("gmail")["messages"][0]
    assert mapped("message", "email", message) == {
        "external_id": "19ad2f4e8b6c0a11",
        "kind": "email",
        "thread_id": "19ad2f4e8b6c0a11",
        "sender": "Ada Lovelace <ada@example.com>",
        "recipients": ["Charles Babbage <charles@example.com>", "grace@example.com, alan@example.com"],
        "subject": "Lunch on Thursday?",
        "sent_at": "2025-12-03T10:00:00Z",
        "labels": ["INBOX", "UNREAD", "CATEGORY_PERSONAL"],
        "snippet": "Shall we meet on Thursday at noon? I can book the usual place.",
        "attributes": {"history_id": "4321001", "size_estimate": 5123, "date_header": "Wed, 3 Dec 2025 10:00:00 +0000"},
    }


def test_message_mapping_reads_headers_in_any_case_and_tolerates_absent_ones() -> None:
    reply, bare = fixture("gmail")["messages"][1:3]
    fields = mapped("message", "email", reply)
    assert (fields["sender"], fields["subject"]) == ("charles@example.com", "Re: Lunch on Thursday?")
    assert fields["recipients"] == ["Ada Lovelace <ada@example.com>", "grace@example.com"]
    fields = mapped("message", "email", bare)  # no labelIds, no To/Cc/Subject/Date
    assert "labels" not in fields and "recipients" not in fields and "subject" not in fields
    assert fields["attributes"]["date_header"] is None and fields["sender"] == "noreply@example.org"


def test_message_mapping_with_nulls_and_a_minimal_message() -> None:
    nulls = {"id": "a1", "threadId": None, "labelIds": None, "snippet": None, "internalDate": None, "payload": None}
    assert mapped("message", "email", nulls) == {
        "external_id": "a1",
        "kind": "email",
        "attributes": {"history_id": None, "size_estimate": None, "date_header": None},
    }
    headers = {"id": "a2", "payload": {"headers": None}}
    assert mapped("message", "email", headers)["external_id"] == "a2"
    odd = {"id": "a3", "payload": {"headers": [{"name": None, "value": "x"}, {"name": "From", "value": None}]}}
    assert mapped("message", "email", odd)["sender"] == ""


def test_deleted_message_is_a_tombstone() -> None:
    deleted = fixture("gmail")["history"][2]["messagesDeleted"][0]["message"]
    assert mapped("message", "deleted", deleted) == {
        "external_id": "19ad2f4e8b6c0a13",
        "kind": "email",
        "thread_id": "19ad2f4e8b6c0a13",
        "attributes": {"deleted": True},
    }


def test_file_mapping_of_each_kind() -> None:
    folder, doc, pdf, sheet = fixture("drive")["files"]
    assert mapped("file", "file", pdf) == {
        "external_id": "1pQr_pdfNotes",
        "name": "notes.pdf",
        "mime_type": "application/pdf",
        "kind": "file",
        "owners": ["charles@example.com"],
        "size_bytes": 482133,
        "source_created_at": "2025-10-11T12:00:00Z",
        "source_modified_at": "2025-10-11T12:00:00Z",
        "url": "https://drive.google.com/file/d/1pQr_pdfNotes/view?usp=drivesdk",
        "trashed": True,
        "parent_id": "1aBcD_folderProjects",
        "attributes": {"drive_id": None},
    }
    assert (mapped("file", "file", folder)["kind"], mapped("file", "file", doc)["kind"]) == ("folder", "document")
    fields = mapped("file", "file", sheet)  # a shared drive's file: no owners, no size
    assert "owners" not in fields and "size_bytes" not in fields
    assert fields["attributes"] == {"drive_id": "0AFinanceSharedDrivePVA"}
    assert mapped("file", "file", doc)["source_modified_at"] == "2025-12-02T16:30:12.345000Z"


def test_file_mapping_with_nulls_and_only_an_id() -> None:
    nulls = {
        "id": "f1",
        "name": None,
        "mimeType": None,
        "owners": None,
        "size": None,
        "parents": None,
        "trashed": None,
        "webViewLink": None,
    }
    assert mapped("file", "file", nulls) == {"external_id": "f1", "attributes": {"drive_id": None}}
    assert mapped("file", "file", {"id": "f2", "parents": [], "owners": [{"displayName": "Ann"}]})["owners"] == ["Ann"]


def test_removed_file_is_a_tombstone() -> None:
    removed = fixture("drive")["changes"][3]
    assert mapped("file", "removed", removed) == {
        "external_id": "1pQr_pdfNotes",
        "trashed": True,
        "attributes": {"removed": True, "removed_at": "2025-12-03T11:10:00.000Z"},
    }


# -- the fixtures against Google's discovery schemas ------------------------------------------------------------

SCHEMAS = fixture("discovery_schemas")


def conforms(value: Any, schema: dict[str, Any], api: str, where: str = "$") -> list[str]:
    """Where ``value`` breaks the discovery schema (unknown properties, wrong JSON types)."""
    if "$ref" in schema:
        return conforms(value, SCHEMAS[api]["schemas"][schema["$ref"]], api, where)
    kind = schema.get("type")
    problems: list[str] = []
    if kind == "object" and isinstance(value, dict):
        properties = schema.get("properties")
        for key, item in value.items():
            if properties is not None and key in properties:
                problems += conforms(item, properties[key], api, f"{where}.{key}")
            elif "additionalProperties" in schema:
                problems += conforms(item, schema["additionalProperties"], api, f"{where}.{key}")
            else:
                problems.append(f"{where}.{key}: not a property of the schema")
    elif kind == "array":
        if not isinstance(value, list):
            return [f"{where}: not an array"]
        for n, item in enumerate(value):
            problems += conforms(item, schema.get("items", {}), api, f"{where}[{n}]")
    elif kind in ("string", "integer", "boolean", "number"):
        types = {"string": str, "integer": int, "boolean": bool, "number": (int, float)}[kind]
        if not isinstance(value, types) or (kind == "integer" and isinstance(value, bool)):
            problems.append(f"{where}: not a {kind}")
        if kind == "string" and schema.get("format") in ("int64", "uint64") and not str(value).isdigit():
            problems.append(f"{where}: not a decimal {schema['format']} string")
    elif kind == "object" and not isinstance(value, dict):
        problems.append(f"{where}: not an object")
    return problems


def test_gmail_fixtures_are_gmail_v1_shapes() -> None:
    gmail = fixture("gmail")
    ref = lambda name: {"$ref": name}  # noqa: E731
    assert SCHEMAS["gmail"]["revision"] and SCHEMAS["gmail"]["document"] == "gmail.v1.json"
    problems = conforms(gmail["profile"], ref("Profile"), "gmail")
    for message in [*gmail["messages"], gmail["added"]]:
        problems += conforms(message, ref("Message"), "gmail")
    problems += conforms(
        {"history": gmail["history"], "historyId": gmail["history_id_after"]}, ref("ListHistoryResponse"), "gmail"
    )
    assert problems == []


def test_drive_fixtures_are_drive_v3_shapes() -> None:
    drive = fixture("drive")
    assert SCHEMAS["drive"]["document"] == "drive.v3.json"
    problems = conforms({"files": drive["files"], "nextPageToken": "x"}, {"$ref": "FileList"}, "drive")
    problems += conforms({"changes": drive["changes"], "newStartPageToken": "1"}, {"$ref": "ChangeList"}, "drive")
    assert problems == []


def test_every_property_the_mappings_and_syncs_read_exists_in_the_api_version_called() -> None:
    """Gmail v1 and Drive v3 spell these so (Drive v2 said ``title``, ``alternateLink``, ``modifiedDate``)."""
    gmail, drive = SCHEMAS["gmail"]["schemas"], SCHEMAS["drive"]["schemas"]
    read = {
        ("gmail", "Message"): {
            "id",
            "threadId",
            "labelIds",
            "snippet",
            "internalDate",
            "historyId",
            "sizeEstimate",
            "payload",
        },
        ("gmail", "MessagePart"): {"headers"},
        ("gmail", "MessagePartHeader"): {"name", "value"},
        ("gmail", "ListHistoryResponse"): {"history", "historyId", "nextPageToken"},
        ("gmail", "History"): {"messagesAdded", "messagesDeleted", "labelsAdded", "labelsRemoved"},
        ("gmail", "Profile"): {"historyId"},
        ("drive", "File"): {
            "id",
            "name",
            "mimeType",
            "owners",
            "size",
            "createdTime",
            "modifiedTime",
            "webViewLink",
            "trashed",
            "parents",
            "driveId",
        },
        ("drive", "User"): {"displayName", "emailAddress"},
        ("drive", "Change"): {"changeType", "fileId", "removed", "time", "file"},
        ("drive", "ChangeList"): {"changes", "nextPageToken", "newStartPageToken"},
        ("drive", "StartPageToken"): {"startPageToken"},
    }
    schemas = {"gmail": gmail, "drive": drive}
    missing = {(api, name): fields - set(schemas[api][name]["properties"]) for (api, name), fields in read.items()}
    assert {k: v for k, v in missing.items() if v} == {}
    assert drive["File"]["properties"]["size"]["format"] == "int64"  # hence int(payload.size)
    assert gmail["Message"]["properties"]["internalDate"]["format"] == "int64"  # epoch ms, hence int()
