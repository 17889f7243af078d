"""Reading error answers into typed exceptions: by the stable code first, by the status otherwise, and an answer
that is not Tether's envelope (a proxy's HTML page) still raises with its status. Parsing only: the live tests
exercise the same path against the server."""

from __future__ import annotations

import httpx
import pytest

from tether_client import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PrincipalSigner,
    ProviderFailed,
    RateLimited,
    ServerError,
    TetherError,
    Unauthenticated,
)
from tether_client.errors import error_of
from tether_client.principal import ApiKey


def answer(status: int, code: str, **extra: object) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": f"{code} happened", **extra}})


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (404, "not_found", NotFound),
        (422, "invalid_input", InvalidInput),
        (400, "missing_field", InvalidInput),
        (401, "unauthenticated", Unauthenticated),
        (403, "upgrade_required", Forbidden),
        (409, "reconnect_required", Conflict),
        (429, "rate_limited", RateLimited),
        (502, "rate_limited", RateLimited),  # the code wins over the status
        (502, "unauthorized", ProviderFailed),
        (503, "enqueue_failed", ServerError),
        (418, "brand_new_code", TetherError),
    ],
)
def test_the_class_follows_the_code_then_the_status(status: int, code: str, kind: type[TetherError]) -> None:
    error = error_of(answer(status, code))
    assert type(error) is kind
    assert (error.code, error.status, error.message) == (code, status, f"{code} happened")


def test_extra_fields_and_a_failed_runs_record_are_kept() -> None:
    error = error_of(answer(403, "upgrade_required", upgrade_url="/v1/integrations/x/upgrade", missing_scopes=["w"]))
    assert error.details == {"upgrade_url": "/v1/integrations/x/upgrade", "missing_scopes": ["w"]}
    assert error.run is None


def test_an_answer_that_is_not_the_envelope_keeps_its_status() -> None:
    error = error_of(httpx.Response(502, text="<html>Bad Gateway</html>"))
    assert (type(error), error.code, error.status) == (ProviderFailed, "http_502", 502)


def test_credentials_stay_out_of_reprs() -> None:
    assert "tk_secret" not in repr(ApiKey("tk_secret-value"))
    assert "signing-key" not in repr(PrincipalSigner("signing-key", "acme", "u1", "user"))
