"""Fuzz the webhook endpoints: arbitrary bodies, headers and tokens never produce a 500."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.store.database import Database
from support.embedded import EmbeddedWorker
from support.scratchdb import upgrade_sqlite
from support.webhook_kit import build_setup, event_body, make_app, sign

HEADER_NAMES = st.sampled_from(
    [
        "X-Hub-Signature-256",
        "X-GitHub-Event",
        "X-GitHub-Delivery",
        "X-Slack-Signature",
        "X-Slack-Request-Timestamp",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "Stripe-Signature",
        "Authorization",
        "X-Event",
        "content-type",
    ]
)
HEADER_VALUES = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
    st.sampled_from(
        [
            "sha256=",
            "v0=",
            "v1,",
            "t=1,v1=",
            "Bearer ",
            "application/x-www-form-urlencoded",
            "0",
            "99999999999999999999",
            "item.changed",
            "ping",
        ]
    ),
)
BODIES = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"", b"{}", b"[]", b"null", b'{"type": "url_verification", "challenge": 1}', b"[" * 5000]),
)


@pytest.mark.parametrize("scheme", ["github", "slack", "standard", "stripe", "bearer", "app"])
def test_fuzzed_requests_never_fail_with_500(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scheme: str, embedded: EmbeddedWorker
) -> None:
    db = Database(f"sqlite:///{tmp_path / 'fuzz.db'}")
    upgrade_sqlite(db)  # a copy of a file migrated once (support.scratchdb)
    loop = asyncio.new_event_loop()
    setup = loop.run_until_complete(build_setup(db, monkeypatch))
    app = make_app(setup.runtime)
    embedded.start(app)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    url = "/v1/webhooks/static/hooks/app" if scheme == "app" else f"/v1/webhooks/{setup.token(scheme)}"
    secret = setup.secret(scheme)

    @settings(max_examples=35, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        body=BODIES,
        headers=st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=6),
        signed=st.booleans(),
        event=st.sampled_from(["item.changed", "item.deleted", "item.explodes", "nope", ""]),
        path=st.sampled_from(["ok", "junk", "static-junk"]),
    )
    def run(body: bytes, headers: dict[str, str], signed: bool, event: str, path: str) -> None:
        target = {"ok": url, "junk": "/v1/webhooks/%2e%2e%2f" + "a" * 20, "static-junk": "/v1/webhooks/static/x/y"}
        if signed:  # a correctly signed but otherwise arbitrary body reaches parsing, routing and processing
            body = body.decode("utf-8", "replace").encode()  # the reference signers take text
            body = body if body.strip() else event_body(scheme if scheme != "app" else "github", event, "f")
            headers = {
                **headers,
                **sign(scheme if scheme != "app" else "app", body, secret, event=event, delivery=str(hash(body))),
            }

        async def go() -> int:
            response = await client.post(target[path], content=body, headers=headers)
            await embedded.drain()
            return response.status_code

        status = loop.run_until_complete(go())
        assert status < 500, (status, body[:80], headers)

    try:
        run()
    finally:
        loop.run_until_complete(client.aclose())
        loop.close()
        db.dispose()
