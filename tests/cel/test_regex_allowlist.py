"""Regexes on user-reachable input are RE2: Python's backtracking ``re`` is imported only where the text is our own.

The scan reads ``src/`` with ``ast``: a module importing ``re`` that is not on ``RE_ALLOWED`` fails, and so does an
entry that no longer imports it (the list stays short and true). The rest checks the call sites moved to RE2 answer
as before, including on text RE2 cannot encode (a lone surrogate is "no match", never a ``UnicodeEncodeError``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from definitions.gcp_scc.client import WorkloadIdentityAuth, parse_expire_time
from definitions.slack.api import raise_for_error
from engine.custody.oauth import _safe_code
from engine.errors import ConfigurationError, ProviderError
from engine.scim.protocol import ScimError, parse_filter, parse_path

SRC = Path(__file__).resolve().parents[2] / "src"

#: Modules that may import ``re``, each with why its input is not user-reachable.
RE_ALLOWED = {
    # definition-author data checked at registration: snake_case IDs, URL templates of a definition's code
    "engine/catalog/registry.py",
    # an operator's provider file (customOauth2 TOML/JSON): IDs and secret names, read at start-up
    "definitions/custom_oauth2/spec.py",
    # the same files' stream declarations: operation names and JSON paths, anchored patterns read at start-up
    "engine/kit/streams/spec.py",
    # key IDs Tether derives itself ("m" + HKDF hex) or an embedder passes to Keyring.add_key
    "engine/custody/crypto.py",
}


def _imports_re(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(alias.name == "re" for alias in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.module == "re" and node.level == 0:
            return True
    return False


def _modules_importing_re() -> set[str]:
    found = set()
    for path in SRC.rglob("*.py"):
        if _imports_re(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            found.add(path.relative_to(SRC).as_posix())
    return found


def test_only_allowlisted_modules_import_re() -> None:
    importing = _modules_importing_re()
    assert importing - RE_ALLOWED == set(), "use re2 on user-reachable input, or allowlist the module with a reason"
    assert RE_ALLOWED - importing == set(), "an allowlisted module no longer imports re: drop it from RE_ALLOWED"


def test_the_scan_sees_both_import_forms() -> None:
    assert _imports_re(ast.parse("import os, re"))
    assert _imports_re(ast.parse("def f():\n    from re import compile"))
    assert not _imports_re(ast.parse("import re2\nfrom . import re"))


# -- the call sites moved to RE2 ---------------------------------------------------------------------------------


def test_oauth_error_codes() -> None:
    assert _safe_code("invalid_grant") == "invalid_grant"
    assert _safe_code("a.b-c_1") == "a.b-c_1"
    for hostile in ("bad code", "x" * 65, "", "café", "a\ud800", "ok\n"):
        assert _safe_code(hostile) is None


@pytest.mark.parametrize(
    ("error", "code"),
    [
        ("channel_not_found", "channel_not_found"),
        ("Bad", "unknown_error"),
        ("ab\n", "unknown_error"),
        ("a\ud800", "unknown_error"),
        ("x" * 65, "unknown_error"),
    ],
)
def test_slack_error_codes(error: str, code: str) -> None:
    with pytest.raises(ProviderError) as caught:
        raise_for_error({"ok": False, "error": error}, "users.list")
    assert code in caught.value.message
    assert "\ud800" not in caught.value.message and "\n" not in caught.value.message


def test_gcp_expire_time_and_service_account_email() -> None:
    assert parse_expire_time("2026-12-03T11:00:00Z") == parse_expire_time("2026-12-03T11:00:00.000Z")
    assert parse_expire_time("2026-12-03T12:00:00+01:00") == parse_expire_time("2026-12-03T11:00:00Z")
    for hostile in ("\uff12\uff10\uff12\uff16-12-03T11:00:00Z", "2026-12-03T11:00:00Z\n", "2026-12-03T11:00:00\ud800"):
        with pytest.raises(ValueError):
            parse_expire_time(hostile)
    def unused(audience: str, ttl: int) -> str:
        raise AssertionError("no token is minted here")

    WorkloadIdentityAuth(identity_token=unused, audience="a", service_account_email="sa@p-1.iam.gserviceaccount.com")
    for hostile in ("sa@p.gserviceaccount.com.evil", "sa\ud800@p.gserviceaccount.com", "SA@p.gserviceaccount.com"):
        with pytest.raises(ConfigurationError):
            WorkloadIdentityAuth(identity_token=unused, audience="a", service_account_email=hostile)


def test_scim_filter_tokens() -> None:
    user = {"userName": "ann", "name": {"givenName": "Ann"}, "emails": [{"value": "a@x.io", "type": "work"}]}
    assert parse_filter('userName eq "ann"')(user) is True
    assert parse_filter('  (userName eq "bob")   or   name.givenName sw "A"  ')(user) is True
    assert parse_filter('emails[type eq "work" and value co "@x"]')(user) is True
    assert parse_filter('userName eq "a\\"nn"')(user) is False
    for garbage in ('userName eq "ann" !', 'userName ~ "ann"', 'userName eq "unterminated', "userName eq \ud800"):
        with pytest.raises(ScimError) as caught:
            parse_filter(garbage)
        assert (caught.value.status, caught.value.scim_type) == (400, "invalidFilter")


def test_scim_long_filter_is_one_pass() -> None:
    # 20,000 tokens: linear in RE2's one finditer pass (a match call per token would re-encode the whole text)
    text = " or ".join(['userName eq "u"'] * 5000)
    assert parse_filter(text)({"userName": "u"}) is True


def test_scim_patch_paths() -> None:
    path = parse_path('emails[type eq "work"].value', ())
    assert (path.attr, path.sub) == ("emails", "value") and path.filter is not None
    for hostile in ("emails\n", "a b", "emails[\ud800]"):
        with pytest.raises(ScimError) as caught:
            parse_path(hostile + "!", ())
        assert caught.value.scim_type == "invalidPath"
