"""A running Tether (uvicorn on 127.0.0.1) beside a real OAuth server (panva), for end-to-end flow tests.

The definition module under test reads its provider URLs from environment variables at import time, so they are
set first and the module reloaded; the caller says which variables, from the started panva server.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest

from engine.api import create_app
from engine.api.principal import create_api_key
from engine.custody.crypto import generate_master_key
from engine.runtime import Runtime
from engine.settings import Settings
from support.oracles import PanvaServer, panva_client
from support.server import free_port, serve

#: The host app's settings page, the one return origin the live Tether allows.
RETURN_URL = "https://app.example/settings/integrations"


@dataclass
class LiveTether:
    base: str
    panva: PanvaServer
    runtime: Runtime
    api: httpx.Client
    key: str


def panva_env(config: str, urls: str, *, userinfo: bool = False) -> Callable[[PanvaServer], dict[str, str]]:
    """The variables pointing a test definition at panva: its operator config (``TETHER_{config}_CLIENT_ID``,
    ``TETHER_SECRET_{config}_CLIENT_SECRET``) and its endpoint URLs (``TETHER_TEST_{urls}_*_URL``)."""

    def env(panva: PanvaServer) -> dict[str, str]:
        values = {
            f"TETHER_{config}_CLIENT_ID": panva.client["client_id"],
            f"TETHER_SECRET_{config}_CLIENT_SECRET": panva.client["client_secret"],
            f"TETHER_TEST_{urls}_AUTHORIZE_URL": panva.authorize_url,
            f"TETHER_TEST_{urls}_TOKEN_URL": panva.token_url,
            f"TETHER_TEST_{urls}_REVOKE_URL": panva.revoke_url,
        }
        if userinfo:
            values[f"TETHER_TEST_{urls}_USERINFO_URL"] = str(panva.metadata["userinfo_endpoint"])
        return values

    return env


@contextmanager
def live_tether(
    database_url: str,
    state_dir: str,
    monkeypatch: pytest.MonkeyPatch,
    *,
    definition_module: str,
    env: Callable[[PanvaServer], dict[str, str]],
) -> Iterator[LiveTether]:
    """Serve ``definition_module`` against a fresh panva whose one client redirects to this Tether's callback.

    ``api`` is a client authenticated with a ``server`` API key of tenant ``acme``.
    """
    port = free_port()
    callback = f"http://127.0.0.1:{port}/v1/oauth/callback"
    with PanvaServer(clients=[panva_client(redirect_uris=[callback])], access_token_ttl=900) as panva:
        for name, value in {"TETHER_SECRET_MASTER_KEY": generate_master_key(), **env(panva)}.items():
            monkeypatch.setenv(name, value)
        importlib.reload(importlib.import_module(definition_module))
        settings = Settings(
            database_url=database_url,
            allow_loopback_providers=True,
            definition_modules=definition_module,
            state_dir=state_dir,
            public_url=f"http://127.0.0.1:{port}",
            allowed_return_origins_list="https://app.example",
        )
        runtime = Runtime.start(settings)
        key, _ = create_api_key(runtime.db, tenant="acme", role="server", name="host app")
        try:
            with (
                serve(create_app(runtime), port) as base,
                httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as api,
            ):
                yield LiveTether(base, panva, runtime, api, key)
        finally:
            runtime.close()
