"""Real OAuth 2.0 authorization servers for tests: panva ``oidc-provider`` (Node) and Canaille (``pytest-iam``).

Why: Tether's OAuth client is proved against servers other people wrote and certify, not against fakes that
share our misreadings of the RFCs. See ``tests/oracles/README.md``.

* :class:`PanvaServer` starts ``node tests/oracles/panva.mjs`` on a free 127.0.0.1 port and automates its dev
  log-in and consent screens. Without node or ``tests/oracles/node_modules`` the test is skipped, or fails
  when ``CI=true`` (CI must run it).
* :class:`CanailleOracle` wraps ``pytest-iam``'s session fixture ``iam_server``: it registers a client and a
  user and, since pytest-iam can open the user's session and record consent directly, "consent" is one GET.

These helpers talk to the servers with plain ``httpx`` on purpose: they play the browser and the server's own
introspection client, not Tether, so they do not go through the egress guard.
"""

from __future__ import annotations

import json
import os
import queue
import re
import secrets
import shutil
import socket
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

ORACLES_DIR = Path(__file__).resolve().parent.parent / "oracles"
PANVA_SCRIPT = ORACLES_DIR / "panva.mjs"
PANVA_PACKAGE = ORACLES_DIR / "node_modules" / "oidc-provider" / "package.json"
REDIRECT_URI = "http://127.0.0.1:9999/cb"  # never contacted: consent automation stops at the redirect
START_TIMEOUT = 20.0
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def oracle_unavailable(name: str, reason: str) -> None:
    """Skip on a developer machine; fail under ``CI=true`` so a missing oracle cannot pass silently."""
    message = f"{name} is not available: {reason}"
    if IN_CI:
        pytest.fail(message + " (CI=true: a missing test oracle is a failure)", pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    """A port nothing listens on right now (for 'connection refused' tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def callback_params(callback_url: str, *, state: str) -> dict[str, str]:
    """The query of an authorization callback, after checking ``state``; raises if the server sent an error."""
    params = {k: v[0] for k, v in parse_qs(urlsplit(callback_url).query).items()}
    if "error" in params:
        raise AssertionError(f"the authorization server answered {params['error']}")
    if params.get("state") != state:
        raise AssertionError("the callback's state does not match the request's")
    return params


def _introspect(url: str, client_id: str, client_secret: str, token: str) -> dict[str, Any]:
    with httpx.Client(trust_env=False, timeout=10.0) as http:
        response = http.post(url, data={"token": token}, auth=(client_id, client_secret))
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


# -- panva oidc-provider -----------------------------------------------------------------------------------------


def panva_client(
    client_id: str = "engine",
    *,
    redirect_uris: Sequence[str] = (REDIRECT_URI,),
    scope: str = "openid offline_access profile api:read api:write",
    auth_method: str = "client_secret_basic",
) -> dict[str, Any]:
    """oidc-provider client metadata with a fresh random secret."""
    return {
        "client_id": client_id,
        "client_secret": f"{client_id}-{secrets.token_urlsafe(24)}",
        "redirect_uris": list(redirect_uris),
        "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
        "response_types": ["code"],
        "scope": scope,
        "token_endpoint_auth_method": auth_method,
    }


@dataclass
class PanvaServer:
    """``node tests/oracles/panva.mjs`` on 127.0.0.1, as a context manager.

    ``clients`` are oidc-provider client metadata (default: one :func:`panva_client`); the first is the one
    :meth:`introspect` authenticates as.
    """

    clients: list[dict[str, Any]] = field(default_factory=lambda: [panva_client()], repr=False)
    access_token_ttl: int = 60
    #: Scopes the server supports besides its defaults (a provider's own names, such as Google's scope URLs).
    extra_scopes: Sequence[str] = ()
    issuer: str = ""
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)
    _process: subprocess.Popen[str] | None = field(default=None, repr=False)
    _stderr: list[str] = field(default_factory=list, repr=False)
    #: ``("grant.success" | "grant.error", grant_type)`` per token request the server handled, in order.
    events: list[tuple[str, str]] = field(default_factory=list, repr=False)

    # -- lifecycle

    def __enter__(self) -> PanvaServer:
        node = shutil.which("node")
        if node is None:
            oracle_unavailable("panva oidc-provider", "node is not on PATH")
        if not PANVA_PACKAGE.exists():
            oracle_unavailable("panva oidc-provider", "run `npm ci --prefix tests/oracles` first")
        env = {
            **os.environ,
            "PANVA_CLIENTS": json.dumps(self.clients),
            "PANVA_ACCESS_TOKEN_TTL": str(self.access_token_ttl),
            "PANVA_EXTRA_SCOPES": " ".join(self.extra_scopes),
            "PANVA_PORT": "0",
        }
        self._process = subprocess.Popen(
            [str(node), str(PANVA_SCRIPT)],
            cwd=ORACLES_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        ready: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._drain_stdout, args=(ready,), daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        try:
            line = ready.get(timeout=START_TIMEOUT)
        except queue.Empty:
            self._stop()
            raise RuntimeError(f"panva did not start: {self._stderr_tail()}") from None
        if not line.startswith("ready "):
            self._stop()
            raise RuntimeError(f"panva did not start: {self._stderr_tail()}")
        self.issuer = line.split(" ", 1)[1].strip()
        with httpx.Client(trust_env=False, timeout=10.0) as http:
            self.metadata = http.get(f"{self.issuer}/.well-known/openid-configuration").raise_for_status().json()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop()

    def _drain_stdout(self, ready: queue.Queue[str]) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            if line.startswith("ready "):
                ready.put(line)
            elif line.startswith("event "):
                _, name, grant_type = line.split()
                self.events.append((name, grant_type))
        ready.put("exited")  # unblocks the start-up wait when the process dies first

    def _drain_stderr(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        for line in self._process.stderr:
            self._stderr.append(line.rstrip())
            del self._stderr[:-40]

    def _stderr_tail(self) -> str:
        return " | ".join(self._stderr[-10:]) or "(no output)"

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    # -- endpoints

    @property
    def client(self) -> dict[str, Any]:
        return self.clients[0]

    @property
    def authorize_url(self) -> str:
        return str(self.metadata["authorization_endpoint"])

    @property
    def token_url(self) -> str:
        return str(self.metadata["token_endpoint"])

    @property
    def revoke_url(self) -> str:
        return str(self.metadata["revocation_endpoint"])

    @property
    def introspect_url(self) -> str:
        return str(self.metadata["introspection_endpoint"])

    # -- the user's part and the server's view

    def consent(self, authorization_url: str, *, login: str = "alice") -> str:
        """Play the browser through the dev interactions; returns the callback URL (with code or error).

        Flow: GET the authorization URL → 303 to ``/interaction/<uid>`` → POST the login form → 303 back to
        the authorization endpoint → 303 to the consent interaction → POST ``prompt=consent`` → 303 … → the
        redirect URI. Cookies carry the interaction between the steps.
        """
        issuer_origin = urlsplit(self.issuer).netloc
        url = authorization_url
        with httpx.Client(trust_env=False, follow_redirects=False, timeout=10.0) as browser:
            response = browser.get(url)
            for _ in range(12):
                if response.is_redirect:
                    url = urljoin(url, response.headers["location"])
                    if urlsplit(url).netloc != issuer_origin:
                        return url
                    response = browser.get(url)
                    continue
                found = re.search(r'name="prompt" value="(\w+)"', response.text)
                if response.status_code != 200 or found is None:
                    raise AssertionError(f"panva answered HTTP {response.status_code} at {urlsplit(url).path}")
                if found.group(1) == "login":
                    form = {"prompt": "login", "login": login, "password": "any"}
                else:
                    form = {"prompt": found.group(1)}
                response = browser.post(url, data=form)
        raise AssertionError("panva's interaction did not reach the redirect URI")

    def grants(self, grant_type: str) -> list[str]:
        """Outcomes (``grant.success`` / ``grant.error``) of the token requests of one grant type so far."""
        return [name for name, kind in self.events if kind == grant_type]

    def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662 introspection as the first client."""
        return _introspect(self.introspect_url, self.client["client_id"], self.client["client_secret"], token)


# -- Canaille (pytest-iam) ---------------------------------------------------------------------------------------


@dataclass
class CanailleOracle:
    """One client and one logged-in, consenting user on pytest-iam's Canaille server.

    Build it with :meth:`create` from the ``iam_server`` fixture. Canaille binds ``localhost`` (loopback) and
    its issuer is ``http://localhost:PORT/``; OIDC authorize requests need a ``nonce``.
    """

    server: Any
    client_id: str
    client_secret: str = field(repr=False)
    metadata: Mapping[str, Any] = field(repr=False)
    redirect_uri: str = REDIRECT_URI

    @classmethod
    def create(cls, iam_server: Any, *, scope: Sequence[str] = ("openid", "profile", "email"),
               redirect_uri: str = REDIRECT_URI) -> CanailleOracle:
        client_id = f"engine-{secrets.token_hex(4)}"
        client_secret = secrets.token_urlsafe(24)
        models = iam_server.models
        client = models.Client(
            client_id=client_id,
            client_secret=client_secret,
            client_name="tether tests",
            redirect_uris=[redirect_uri],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="client_secret_basic",
            scope=list(scope),
        )
        iam_server.backend.save(client)
        client.audience = [client]  # Canaille introspects only tokens whose audience holds the caller
        iam_server.backend.save(client)
        user = iam_server.random_user()
        iam_server.login(user)
        iam_server.consent(user, client)
        with httpx.Client(trust_env=False, timeout=10.0) as http:
            metadata = http.get(f"{iam_server.url}.well-known/openid-configuration").raise_for_status().json()
        return cls(iam_server, client_id, client_secret, metadata, redirect_uri)

    @property
    def authorize_url(self) -> str:
        return str(self.metadata["authorization_endpoint"])

    @property
    def token_url(self) -> str:
        return str(self.metadata["token_endpoint"])

    @property
    def revoke_url(self) -> str:
        return str(self.metadata["revocation_endpoint"])

    @property
    def introspect_url(self) -> str:
        return str(self.metadata["introspection_endpoint"])

    def consent(self, authorization_url: str) -> str:
        """The session is open and consent recorded, so the authorize GET redirects straight back."""
        with httpx.Client(trust_env=False, follow_redirects=False, timeout=10.0) as browser:
            response = browser.get(authorization_url)
        if not response.is_redirect:
            raise AssertionError(f"Canaille answered HTTP {response.status_code} to the authorization request")
        return urljoin(authorization_url, response.headers["location"])

    def introspect(self, token: str) -> dict[str, Any]:
        return _introspect(self.introspect_url, self.client_id, self.client_secret, token)
