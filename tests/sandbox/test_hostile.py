"""Hostile input on every sandbox route (derandomized, small): never a 5xx, and every 4xx is JSON with a string
``error`` (the provider's answers, or Tether's envelope for the controls) or, for the consent endpoints, a page."""

from __future__ import annotations

import json
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.conftest import LiveSandbox

ROUTES = [
    ("GET", "/api/v1/me"),
    ("GET", "/api/v1/{kind}"),
    ("POST", "/api/v1/webhooks"),
    ("DELETE", "/api/v1/webhooks/{text}"),
    ("GET", "/oauth/authorize"),
    ("POST", "/oauth/authorize"),
    ("POST", "/oauth/token"),
    ("POST", "/oauth/revoke"),
    ("POST", "/control/accounts/{account}/expire-tokens"),
    ("POST", "/control/accounts/{account}/revoke-grants"),
    ("POST", "/control/accounts/{account}/fail"),
    ("POST", "/control/accounts/{account}/records/{kind}"),
    ("PATCH", "/control/accounts/{account}/records/{kind}/{text}"),
    ("DELETE", "/control/accounts/{account}/records/{kind}/{text}"),
    ("POST", "/control/accounts/{account}/duplicate"),
    ("GET", "/"),
]
KINDS = st.sampled_from(["users", "events", "nope", "%2e%2e", "USERS"])
ACCOUNTS = st.sampled_from(["acme", "globex", "nobody", "ACME", "ac me"])
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=8,
)
FIELDS = st.dictionaries(
    st.sampled_from(
        [
            "limit",
            "cursor",
            "updated_since",
            "grant_type",
            "code",
            "token",
            "client_id",
            "client_secret",
            "redirect_uri",
            "code_challenge",
            "code_challenge_method",
            "response_type",
            "scope",
            "state",
            "account",
            "decision",
            "status",
            "count",
            "url",
            "secret",
            "email",
            "name",
        ]
    )
    | TEXT,
    TEXT | st.integers().map(str),
    max_size=6,
)
HEADERS = st.sampled_from(
    [
        {},
        {"X-Api-Key": "sbx_key_acme"},
        {"Authorization": "Bearer sbx_at_x"},
        {"Authorization": "Basic Og=="},
        {"Authorization": "Basic dGV0aGVyLXNhbmRib3g6c2FuZGJveC1zZWNyZXQ="},
    ]
)


def _check(answer_status: int, content_type: str, body: bytes) -> None:
    assert answer_status < 500, body[:300]
    if answer_status >= 400 and not content_type.startswith("text/html"):
        document = json.loads(body)
        error = document["error"]
        assert isinstance(error, str) or isinstance(error.get("code"), str), body[:300]


def test_no_route_answers_5xx(live: LiveSandbox) -> None:
    for route in ROUTES:
        _probe(live, *route)
    for account in ("acme", "globex"):
        assert live.control(f"{account}/reset").status_code == 200


def _probe(live: LiveSandbox, method: str, template: str) -> None:
    """Draw requests for one route and check every answer."""

    @given(
        kind=KINDS,
        account=ACCOUNTS,
        text=TEXT.filter(lambda t: "/" not in t and t not in (".", "..")),
        query=FIELDS,
        form=FIELDS,
        body=JSONISH,
        headers=HEADERS,
        as_form=st.booleans(),
    )
    @settings(max_examples=12, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    def probe(kind, account, text, query, form, body, headers, as_form) -> None:  # type: ignore[no-untyped-def]
        path = template.format(kind=quote(kind, safe="%"), account=quote(account), text=quote(text or "x", safe=""))
        kwargs: dict = {"params": query, "headers": headers}
        if method in ("POST", "PATCH"):
            kwargs["data" if as_form else "json"] = form if as_form else body
        answer = live.http.request(method, f"{live.sandbox}{path}", **kwargs)
        _check(answer.status_code, answer.headers.get("content-type", ""), answer.content)

    probe()
