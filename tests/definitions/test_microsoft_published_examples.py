"""Every Microsoft mapping against Microsoft's own published example responses, not only fixtures written here.

The examples are copied as data under ``tests/fixtures/<definition>/published/`` with their source (repository,
path, commit) named inside each file: Graph's from ``microsoftgraph/microsoft-graph-docs-contrib`` (v1.0, the
version the clients call), Defender for Cloud's from ``Azure/azure-rest-api-specs`` (the ``examples/*.json`` of
the exact api-versions the operations send: assessments ``2021-06-01``, sub-assessments ``2019-01-01-preview``).
Each one goes through the operation's own payload shaping and the registry's compiled mapping into the model, and
the test asserts that no record is rejected or dropped and that the fields the example carries land.

Teams' channel messages (``microsoft_teams``) are checked the same way, bodies never landing; its change
notifications' published examples (a channel message, a reply) must name the message the handler fetches.

What they caught (docs/decisions.md, "Microsoft mappings against published examples"): Defender's published
``resourceDetails`` spell ``id`` and ``source`` in lower case where the recorded answers capitalise them, its
portal link is ``links.azurePortalUri`` (a full URL) where older answers had ``links.azurePortal`` (no scheme),
the CVSS score sits nested in ``additionalData.cvss["3.0"].base`` and was never mapped, and an unknown status
code or severity (both are open enums, ``modelAsString``) failed the whole record; Graph's groups answer
``securityEnabled: null`` and ``groupTypes: null`` for some groups, which failed the record.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from definitions.azure_entra_id import definition as entra
from definitions.azure_entra_id.operations import DirectorySync
from definitions.azure_security_center import definition as defender
from definitions.azure_security_center.operations import AssessmentsCollect, SubAssessmentsCollect
from definitions.microsoft_teams import definition as teams
from definitions.microsoft_teams.operations import (
    ChannelMessagesSync,
    FetchChangedMessages,
    FetchChangedMessagesConfig,
    message_payload,
)
from definitions.microsoft_teams.webhook import changed_message
from engine import REMOVE, Payload
from support.published import land

FIXTURES = Path(__file__).parents[1] / "fixtures"


def published(definition_id: str, name: str) -> list[dict[str, Any]]:
    recorded = json.loads((FIXTURES / definition_id / "published" / f"{name}.json").read_text())
    assert recorded["source"].startswith(("microsoftgraph/", "Azure/")), "a published example names its source"
    return list(recorded["body"]["value"])


def entra_payloads(name: str, kind: str) -> list[Payload]:
    return [p for item in published("azure_entra_id", name) for p in DirectorySync.payloads(kind, item)]


# -- Entra ID (Graph v1.0 users and groups) ------------------------------------------------------------------


def test_graph_user_list_example_lands_every_user() -> None:
    room, admin = land(entra, DirectorySync, entra_payloads("user_list", "users"))
    assert (room.external_id, room.email, room.display_name, room.given_name, room.family_name) == (
        "6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0",
        "Adams@contoso.com",
        "Conf Room Adams",
        None,
        None,
    )
    assert (room.status, room.account_type) == ("active", "user")
    # "mail": null: the address falls back to the sign-in name.
    assert (admin.email, admin.username, admin.given_name, admin.family_name) == (
        "admin@contoso.com",
        "admin@contoso.com",
        "MOD",
        "Administrator",
    )


def test_graph_user_delta_example_lands_its_fields() -> None:
    [user] = land(entra, DirectorySync, entra_payloads("user_delta", "users"))
    assert (user.external_id, user.email, user.display_name, user.given_name, user.family_name) == (
        "id-value",
        "mail-value",
        "displayName-value",
        "givenName-value",
        "surname-value",
    )
    assert user.attributes["job_title"] == "jobTitle-value"


def test_graph_group_list_example_lands_both_groups() -> None:
    golf_assist, golf_discussion = land(entra, DirectorySync, entra_payloads("group_list", "groups"))
    assert (golf_assist.name, golf_assist.email, golf_assist.group_type) == (
        "Golf Assist",
        "golfassist@contoso.com",
        "microsoft_365",
    )
    assert golf_assist.description == "Self help community for golf"
    assert (golf_discussion.group_type, golf_discussion.attributes["mail_enabled"]) == ("distribution", True)


def test_graph_group_delta_example_lands_the_group_adds_one_member_and_removes_the_other() -> None:
    payloads = entra_payloads("group_delta_changes", "groups")
    assert [(p.schema, p.action) for p in payloads] == [
        ("directory_group", ""),
        ("directory_membership", REMOVE),
        ("directory_membership", ""),
    ]
    group, removed, member = land(entra, DirectorySync, payloads)
    # The member removed from the group: its membership row goes.
    assert removed == ("632f6bb2-3ec8-4c1f-9073-0027a8c6859", "2e5807ce-58f3-4a94-9b37-ffff2e085957")
    assert (group.external_id, group.name, group.description) == (
        "2e5807ce-58f3-4a94-9b37-ffff2e085957",
        "TestGroup3",
        "A test group for change tracking",
    )
    assert (member.group_external_id, member.account_external_id) == (
        "2e5807ce-58f3-4a94-9b37-ffff2e085957",
        "37de1ae3-408f-4702-8636-20824abda004",
    )


@pytest.mark.parametrize(
    "nulls",
    [
        {"securityEnabled": None, "groupTypes": None, "mailEnabled": None},
        {"securityEnabled": None},
        {"groupTypes": None},
    ],
)
def test_a_group_with_null_flags_still_lands(nulls: dict[str, Any]) -> None:
    """Graph documents every group property as nullable, and answers null for some groups (for example ones
    synced from on-premises): the record must land, not fail on ``null && …`` or ``"Unified" in null``."""
    item = {**published("azure_entra_id", "group_list")[1], **nulls}
    [group] = land(entra, DirectorySync, DirectorySync.payloads("groups", item))
    assert group.group_type == "distribution" and group.name == "Golf Discussion"


def test_a_user_with_null_flags_still_lands() -> None:
    item = {**published("azure_entra_id", "user_list")[0], "accountEnabled": None, "userType": None}
    [user] = land(entra, DirectorySync, DirectorySync.payloads("users", item))
    assert (user.status, user.account_type) == ("active", "user")


# -- Defender for Cloud (ARM) --------------------------------------------------------------------------------


def defender_payloads(name: str, variant: str) -> list[Payload]:
    return [
        Payload("vulnerability", item, variant=variant, resource=variant)
        for item in published("azure_security_center", name)
    ]


VMSS = (
    "/subscriptions/20ff7fc3-e762-44dd-bd96-b71116dcdc23/resourceGroups/myRg/providers/Microsoft.Compute/"
    "virtualMachineScaleSets/"
)


def test_published_assessment_list_lands_with_its_resource() -> None:
    healthy, not_applicable = land(defender, AssessmentsCollect, defender_payloads("assessments_list", "assessment"))
    assert (healthy.status, healthy.resource_identifier, healthy.severity) == ("resolved", VMSS + "vmss1", None)
    assert healthy.title == "Install endpoint protection solution on virtual machine scale sets"
    assert (not_applicable.status, not_applicable.resource_identifier) == ("not_applicable", VMSS + "vmss2")
    assert not_applicable.attributes["cause"] == "OffByPolicy"
    assert not_applicable.attributes["status_description"].startswith("The effective policy")


def test_published_assessment_links_land_as_the_portal_url() -> None:
    [assessment] = land(defender, AssessmentsCollect, defender_payloads("assessment_with_links", "assessment"))
    assert assessment.url == (
        "https://www.portal.azure.com/?fea#blade/Microsoft_Azure_Security/"
        "RecommendationsBlade/assessmentKey/21300918-b2e3-0346-785f-c77ff57d243b"
    )


def test_published_sub_assessment_lands_its_cve_and_its_nested_cvss_score() -> None:
    [finding] = land(
        defender, SubAssessmentsCollect, defender_payloads("sub_assessments_subscription", "sub_assessment")
    )
    assert (finding.cve_id, finding.severity, finding.status, finding.cvss_score) == (
        "CVE-2019-12345",
        "high",
        "open",
        10.0,
    )
    assert finding.resource_identifier.endswith(
        "/imageDigest/c186fc44-3154-4ce2-ba18-b719d895c3b0/providers/"
        "Microsoft.Security/assessments/21300918-b2e3-0346-785f-c77ff57d243b"
        "/subAssessments/8c98f353-8b41-4e77-979b-6adeecd5d168"
    )
    assert finding.published_at == datetime(2018, 1, 1, tzinfo=UTC)
    assert (finding.attributes["finding_id"], finding.attributes["category"]) == ("1001", "Backdoors and trojan horses")
    assert finding.attributes["assessed_resource_type"] == "ContainerRegistryVulnerability"
    assert finding.attributes["impact"] == "3" and finding.attributes["patchable"] is True


def test_published_sql_sub_assessment_lands_without_a_cve() -> None:
    [check] = land(defender, SubAssessmentsCollect, defender_payloads("sub_assessments_sql", "sub_assessment"))
    assert (check.cve_id, check.cvss_score, check.severity, check.status) == (None, None, "high", "resolved")
    assert check.attributes["finding_id"] == "VA2064" and check.published_at is None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # Open enums (modelAsString): a value this mapping does not know is kept as sent, not a failed record.
        ({"status": {"code": "Unknown"}}, {"status": "Unknown"}),
        ({"status": {"code": "Unhealthy", "severity": "Critical"}}, {"severity": "critical", "status": "open"}),
        ({"status": {"code": "Unhealthy", "severity": "Severe"}}, {"severity": "Severe"}),
        # Absent and null optional blocks.
        ({"additionalData": None}, {"cve_id": None, "cvss_score": None, "published_at": None}),
        ({"additionalData": {"cve": None, "cvss": None}}, {"cve_id": None, "cvss_score": None}),
        ({"additionalData": {"cve": [], "cvss": {"2.0": {"base": 7.5}}}}, {"cve_id": None, "cvss_score": 7.5}),
        ({"resourceDetails": None}, {"resource_identifier": None}),
        # An on-premises machine has no resource ID: its machine name stands in.
        (
            {
                "resourceDetails": {
                    "source": "OnPremise",
                    "machineName": "web-01",
                    "workspaceId": "w",
                    "vmuuid": "u",
                    "sourceComputerId": "s",
                }
            },
            {"resource_identifier": "web-01"},
        ),
    ],
)
def test_sub_assessment_variations_still_land(change: dict[str, Any], expected: dict[str, Any]) -> None:
    item = published("azure_security_center", "sub_assessments_subscription")[0]
    item = {**item, "properties": {**item["properties"], **change}}
    [row] = land(defender, SubAssessmentsCollect, [Payload("vulnerability", item, variant="sub_assessment")])
    assert {k: getattr(row, k) for k in expected} == expected


@pytest.mark.parametrize(
    ("details", "resource"),
    [
        ({"Source": "Azure", "Id": VMSS + "vmss1"}, VMSS + "vmss1"),  # the recorded answers' capitalised spelling
        ({"source": "Azure", "id": VMSS + "vmss1"}, VMSS + "vmss1"),  # the published examples' spelling
        ({"Source": "OnPremise", "MachineName": "web-01"}, "web-01"),
        ({"source": "OnPremiseSql", "machineName": "sql-01", "serverName": "s", "databaseName": "d"}, "sql-01"),
    ],
)
def test_assessment_resource_details_in_either_spelling(details: dict[str, Any], resource: str) -> None:
    item = published("azure_security_center", "assessments_list")[0]
    item = {**item, "properties": {**item["properties"], "resourceDetails": details}}
    [row] = land(defender, AssessmentsCollect, [Payload("vulnerability", item, variant="assessment")])
    assert row.resource_identifier == resource


# -- Teams (Graph v1.0 chatMessage) ---------------------------------------------------------------------------

CHANNEL = "19:4a95f7d8db4c4e7fae857bcebe0623e6@thread.tacv2"
TEAM = "fbe2bf47-16c8-47cf-b4a5-4b9b187c508b"


def teams_payloads(name: str) -> list[Payload]:
    return [
        Payload("message", item, variant="channel_message", resource=CHANNEL)
        for item in published("microsoft_teams", name)
    ]


def test_published_channel_messages_land_without_their_bodies() -> None:
    hello, image, system = land(teams, ChannelMessagesSync, teams_payloads("channel_messages"))
    assert (hello.external_id, hello.kind, hello.thread_id) == (f"{CHANNEL}/1616965872395", "chat", "1616965872395")
    assert (hello.sender, hello.sender_name) == ("8ea0e38b-efb3-4757-924a-5f94061cf8c2", "Robin Kline")
    assert (hello.channel_id, hello.team_id, hello.subject, hello.snippet) == (CHANNEL, TEAM, None, None)
    assert hello.sent_at == datetime(2021, 3, 28, 21, 11, 12, 395000, tzinfo=UTC)
    assert hello.url.startswith("https://teams.microsoft.com/l/message/19%3A4a95f7d8db4c4e7fae857bcebe0623e6")
    assert hello.attributes["sender_type"] == "user" and hello.attributes["deleted"] is False
    assert image.subject is None  # "subject": "" is no subject
    # A system event: "from" is null, the event's type is kept.
    assert (system.sender, system.sender_name, system.attributes["sender_type"]) == (None, None, None)
    assert system.attributes["event"] == "#microsoft.graph.teamDescriptionUpdatedEventMessageDetail"
    assert system.attributes["message_type"] == "unknownFutureValue"
    for row in (hello, image, system):
        assert "Hello World" not in json.dumps(row.model_dump(mode="json"))  # no body anywhere


def test_published_delta_pages_land() -> None:
    rows = land(
        teams,
        ChannelMessagesSync,
        [*teams_payloads("delta_initial"), *teams_payloads("delta_final"), *teams_payloads("delta_changes")],
    )
    assert [r.attributes["message_id"] for r in rows] == [
        "1606515483514",
        "1606691795113",
        "1611351582080",
        "1611351603178",
        "1616989510408",
    ]
    assert all(r.sender_name == "Robin Kline" and r.team_id == TEAM for r in rows)


def test_published_deleted_message_removes_its_row() -> None:
    [item] = published("microsoft_teams", "deleted_message")
    [payload] = [message_payload(item, CHANNEL)]  # the sync's own shaping: deletedDateTime set → a removal
    assert payload.action == REMOVE
    assert land(teams, ChannelMessagesSync, [payload]) == [(f"{CHANNEL}/1614029151240",)]
    # Mapped without removing (a host's own use), it says it is deleted and keeps no subject or snippet.
    [tombstone] = land(teams, ChannelMessagesSync, teams_payloads("deleted_message"))
    assert (tombstone.sender, tombstone.snippet, tombstone.attributes["deleted"]) == (None, None, True)
    assert tombstone.attributes["deleted_at"] == "2021-02-22T21:25:51.24Z"


def test_an_application_sender_and_a_message_without_channel_identity_land() -> None:
    item = {
        **published("microsoft_teams", "channel_messages")[0],
        "channelIdentity": None,
        "replyToId": "1616965800000",
        "from": {
            "application": {"id": "bot-1", "displayName": "Deploy bot", "applicationIdentityType": "bot"},
            "device": None,
            "user": None,
        },
    }
    [row] = land(teams, ChannelMessagesSync, [Payload("message", item, variant="channel_message", resource=CHANNEL)])
    assert (row.sender, row.sender_name, row.attributes["sender_type"]) == ("bot-1", "Deploy bot", "application")
    assert (row.external_id, row.channel_id, row.team_id, row.thread_id) == (
        f"{CHANNEL}/1616965872395",
        CHANNEL,
        None,
        "1616965800000",
    )


# -- Teams change notifications (Graph v1.0 changeNotification on chatMessage) ----------------------------------


def test_published_channel_message_notification_names_the_message_to_fetch() -> None:
    [item] = published("microsoft_teams", "notification_channel_message")
    changed = changed_message(item)
    assert changed == {"team_id": "fbe2bf47-16c8-47cf-b4a5-4b9b187c508b", "channel_id": CHANNEL,
                       "message_id": "1612293113399", "reply_id": None, "change_type": "created"}
    # What the handler dispatches is what the operation accepts (its typed config refuses anything else).
    FetchChangedMessagesConfig.model_validate({"messages": [changed]})


def test_published_reply_notification_names_the_reply() -> None:
    [item] = published("microsoft_teams", "notification_reply")
    changed = changed_message(item)
    assert changed is not None
    assert (changed["channel_id"], changed["message_id"], changed["reply_id"]) == (
        "19:f127a8c55ad949d1a238464d22f0f99e@thread.skype", "1565045424600", "1565047490246")
    FetchChangedMessagesConfig.model_validate({"messages": [changed]})


def test_a_fetched_message_lands_as_the_sync_lands_it() -> None:
    # FetchChangedMessages shapes what Graph answers with the sync's own message_payload and the same mapping.
    payloads = [message_payload(item, CHANNEL) for item in published("microsoft_teams", "channel_messages")]
    fetched = land(teams, FetchChangedMessages, payloads)
    synced = land(teams, ChannelMessagesSync, payloads)
    assert [r.external_id for r in fetched] == [r.external_id for r in synced] == [
        f"{CHANNEL}/1616965872395", f"{CHANNEL}/1616963377068", f"{CHANNEL}/1616883610266"]
