"""The sandbox's REST API: keys and tokens, deterministic seed, cursor pages, incremental reads with deletions,
armed failures, and bad input answered 4xx (never 5xx)."""

from __future__ import annotations

import pytest

from engine.sandbox.seed import BY_ID
from sandbox.conftest import LiveSandbox

ACME = {"X-Api-Key": "sbx_key_acme"}


def test_me_by_api_key(live: LiveSandbox) -> None:
    answer = live.http.get(f"{live.sandbox}/api/v1/me", headers=ACME)
    assert answer.status_code == 200
    assert answer.json() == {"account": "acme", "name": "Acme Corp", "domain": "acme.example"}
    assert (
        live.http.get(f"{live.sandbox}/api/v1/me", headers={"X-Api-Key": "sbx_key_globex"}).json()["account"]
        == "globex"
    )


@pytest.mark.parametrize("headers", [{}, {"X-Api-Key": "sbx_key_nobody"}, {"Authorization": "Bearer sbx_at_nope"}])
def test_unknown_credentials_are_401_with_www_authenticate(live: LiveSandbox, headers: dict[str, str]) -> None:
    answer = live.http.get(f"{live.sandbox}/api/v1/users", headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert answer.json()["error"] == "invalid_token"
    if headers:
        assert 'error="invalid_token"' in answer.headers["www-authenticate"]


def _all(live: LiveSandbox, kind: str, limit: int, **params: str) -> list[dict]:
    records, cursor, pages = [], None, 0
    while True:
        query = {"limit": str(limit), **params, **({"cursor": cursor} if cursor else {})}
        answer = live.http.get(f"{live.sandbox}/api/v1/{kind}", headers=ACME, params=query)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        records += body["data"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return records
        assert pages < 50


def test_seed_is_deterministic_and_pages_walk_every_record_once(live: LiveSandbox) -> None:
    counts = {"users": 12, "groups": 4, "memberships": 12, "assets": 6, "findings": 8, "events": 10}
    for kind, expected in counts.items():
        whole = _all(live, kind, 100)
        paged = _all(live, kind, 5)
        assert len(whole) == expected and paged == whole
        assert len({r["id"] for r in paged}) == expected
    users = _all(live, "users", 100)
    assert users[0]["id"] == "usr_" + __import__("hashlib").sha256(b"acme/users/0").hexdigest()[:12]
    assert users[0]["email"].endswith("@acme.example") and users[0]["updated_at"] == "2026-01-01T00:00:00Z"
    assert set(users[0]) == {
        "id",
        "email",
        "name",
        "title",
        "department",
        "active",
        "created_at",
        "updated_at",
        "deleted",
    }
    event = _all(live, "events", 1)[0]
    assert set(event) == {"id", "title", "start", "end", "organizer_email", "attendees", "updated_at", "deleted"}
    assert BY_ID["acme"].users == 12


def test_changes_and_deletions_reach_incremental_reads(live: LiveSandbox) -> None:
    users = _all(live, "users", 100)
    since = max(u["updated_at"] for u in users)
    assert _all(live, "users", 10, updated_since=since) == []
    changed = live.control(f"acme/records/users/{users[3]['id']}", "PATCH", json={"title": "CTO"})
    assert changed.status_code == 200, changed.text
    removed = live.control(f"acme/records/users/{users[4]['id']}", "DELETE")
    assert removed.status_code == 200, removed.text
    created = live.control("acme/records/users", json={"email": "new@acme.example", "name": "New Person"})
    assert created.status_code == 201, created.text
    incremental = _all(live, "users", 2, updated_since=since)
    by_id = {r["id"]: r for r in incremental}
    assert set(by_id) == {users[3]["id"], users[4]["id"], created.json()["record"]["id"]}
    assert by_id[users[3]["id"]]["title"] == "CTO" and by_id[users[4]["id"]]["deleted"] is True
    full = _all(live, "users", 100)
    assert len(full) == 12 and users[4]["id"] not in {u["id"] for u in full}
    assert live.control("acme/reset").status_code == 200
    assert _all(live, "users", 100) == users


def test_armed_failures_answer_then_stop(live: LiveSandbox) -> None:
    armed = live.control("acme/fail", json={"status": 429, "count": 2, "retry_after": 7})
    assert armed.status_code == 200, armed.text
    for _ in range(2):
        answer = live.http.get(f"{live.sandbox}/api/v1/users", headers=ACME)
        assert answer.status_code == 429 and answer.headers["retry-after"] == "7"
    assert live.http.get(f"{live.sandbox}/api/v1/users", headers=ACME).status_code == 200
    # Other accounts are not affected.
    assert live.control("globex/fail", json={"status": 500}).status_code == 200
    assert live.http.get(f"{live.sandbox}/api/v1/me", headers=ACME).status_code == 200
    assert live.http.get(f"{live.sandbox}/api/v1/me", headers={"X-Api-Key": "sbx_key_globex"}).status_code == 500


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "ten"},
        {"limit": "٣"},
        {"cursor": "not-a-cursor"},
        {"cursor": "W1siYSJdXQ"},
        {"cursor": "x" * 600},
        {"updated_since": "yesterday"},
        {"updated_since": "2026-01-01T00:00:00"},
    ],
)
def test_bad_queries_are_400(live: LiveSandbox, query: dict[str, str]) -> None:
    answer = live.http.get(f"{live.sandbox}/api/v1/users", headers=ACME, params=query)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_request"


def test_unknown_kind_is_404(live: LiveSandbox) -> None:
    answer = live.http.get(f"{live.sandbox}/api/v1/secrets", headers=ACME)
    assert answer.status_code == 404 and answer.json()["error"] == "not_found"


@pytest.mark.parametrize(
    ("path", "method", "body", "status", "code"),
    [
        ("acme/fail", "POST", {"status": 404}, 422, "invalid_input"),
        ("acme/fail", "POST", {"status": 429, "count": 0}, 422, "invalid_input"),
        ("acme/fail", "POST", {"status": 429, "colour": "red"}, 422, "invalid_input"),
        ("acme/fail", "POST", None, 400, "missing_field"),
        ("nobody/reset", "POST", None, 404, "not_found"),
        ("acme/records/secrets", "POST", {"name": "x"}, 404, "not_found"),
        ("acme/records/users", "POST", {"name": "no email"}, 400, "missing_field"),
        ("acme/records/users", "POST", {"email": "a@b.c", "name": "x", "shoe": 9}, 422, "invalid_input"),
        ("acme/records/users", "POST", [1, 2], 422, "invalid_input"),
        ("acme/records/users/usr_nope", "PATCH", {"name": "x"}, 404, "not_found"),
        ("acme/records/users/usr_nope", "DELETE", None, 404, "not_found"),
        ("acme/duplicate", "POST", None, 404, "not_found"),
    ],
)
def test_bad_control_input_is_4xx_with_a_documented_code(
    live: LiveSandbox, path: str, method: str, body: object, status: int, code: str
) -> None:
    answer = live.control(path, method, **({"json": body} if body is not None else {}))
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code
