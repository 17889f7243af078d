"""Slack's user mapping against Slack's own published examples, not only fixtures written here.

``users.list`` (the Web API method ``UserSync`` calls) is checked on the example Slack publishes in its OpenAPI
spec (``slackapi/slack-api-specs``); the ``team_join`` and ``user_change`` events on the Java SDK's samples of
every field seen in real payloads (``slackapi/java-slack-sdk`` ``json-logs/samples``, values blanked to ``""``).
Sources and commits are named inside each file under ``tests/fixtures/slack/published/``.

What they caught (docs/decisions.md): Slack sends unset profile fields as ``""`` (the blanked samples, and
``"phone": ""`` in Slack's own example), which landed as empty emails and names; and the top-level
``real_name`` of Slack's example user is the handle ("spengler") while the profile's is "Egon Spengler", so the
display name was the handle.
"""

from __future__ import annotations

from typing import Any

from definitions.slack import definition
from definitions.slack.operations import UserSync
from engine import Payload
from support.published import land, recorded


def body(name: str) -> dict[str, Any]:
    return recorded("slack", name, sources=("slackapi/",))["body"]


def users(members: list[dict[str, Any]]) -> list[Payload]:
    # What UserSync and the TeamJoin/UserChange handlers yield for each user object.
    return [Payload(schema="directory_account", variant="user", data=member, resource="user") for member in members]


def test_the_published_users_list_example_lands_both_users() -> None:
    spengler, glinda = land(definition, UserSync, users(body("users_list")["members"]))
    assert (spengler.external_id, spengler.email, spengler.username) == (
        "W012A3CDE",
        "spengler@ghostbusters.example.com",
        "spengler",
    )
    # The profile's full name, not the top-level real_name (the handle here).
    assert spengler.display_name == "Egon Spengler"
    assert (spengler.given_name, spengler.family_name) == (None, None)
    assert (spengler.is_admin, spengler.mfa_enabled, spengler.status, spengler.account_type) == (
        True,
        False,
        "active",
        "user",
    )
    assert (glinda.display_name, glinda.given_name, glinda.family_name) == ("Glinda Southgood", "Glinda", "Southgood")
    assert glinda.attributes == {"team_id": "T0G9PQBBK", "is_owner": False, "tz": "America/Los_Angeles"}


def test_blank_profile_fields_land_as_null_not_as_empty_strings() -> None:
    [member] = body("users_list_shape")["members"]
    [row] = land(definition, UserSync, users([member]))
    assert row.external_id == "U00000000"
    assert (row.email, row.display_name, row.given_name, row.family_name, row.username) == (None,) * 5
    assert row.attributes["tz"] is None


def test_the_event_samples_carry_the_users_list_user_and_land() -> None:
    listed = body("users_list_shape")["members"][0]
    events = [body(name)["event"] for name in ("team_join_event", "user_change_event")]
    assert [event["type"] for event in events] == ["team_join", "user_change"]
    for event in events:
        # The fields the mapping reads have the names users.list uses.
        read = {
            "id",
            "name",
            "real_name",
            "deleted",
            "is_bot",
            "is_admin",
            "is_owner",
            "is_restricted",
            "has_2fa",
            "team_id",
            "tz",
            "profile",
        }
        assert read <= set(event["user"]) and read <= set(listed)
        assert {"email", "real_name", "first_name", "last_name"} <= set(event["user"]["profile"])
    # The samples blank the id too; give each one so the rows are keyed as real ones are.
    members = [{**event["user"], "id": f"U0000000{i}"} for i, event in enumerate(events)]
    rows = land(definition, UserSync, users(members))
    assert [(r.external_id, r.email, r.status) for r in rows] == [
        ("U00000000", None, "active"),
        ("U00000001", None, "active"),
    ]
