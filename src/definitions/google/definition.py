"""Google: one definition, one OAuth connection, three products (Calendar, Gmail, Drive).

``google_definition(spec)`` assembles it from the OAuth data (``oauth.toml``, on the customOauth2 substrate) and the
operation templates, so a test can build the same definition against a local OAuth server. The Calendar operations
are ``google_calendar``'s, bound to this client and gated on the ``calendar`` product.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from definitions.custom_oauth2 import generate, load_spec
from definitions.custom_oauth2.spec import ProviderSpec
from definitions.google.config import config_type
from definitions.google.mappings import FILE, FILE_REMOVED, MESSAGE, MESSAGE_DELETED
from definitions.google.operations import FilesSync, MessagesSync
from definitions.google.products import PRODUCTS
from definitions.google_calendar import operations as calendar
from definitions.google_calendar.mappings import EVENT
from engine import Definition, Operation

SPEC = Path(__file__).with_name("oauth.toml")

CALENDAR_OPERATIONS: tuple[type[Operation], ...] = (
    calendar.GetStatus,
    calendar.ListCalendars,
    calendar.GetFreeBusy,
    calendar.ListEvents,
    calendar.CreateEvent,
    calendar.UpdateEvent,
    calendar.CancelEvent,
    calendar.EventsSync,
)


def _bound(template: type[Operation], client: Any, product: str | None = None) -> type[Operation]:
    """``template`` with this definition's client (and product), under the same name (its stable ID)."""
    attrs: dict[str, Any] = {"client": client, "__module__": __name__, "__doc__": template.__doc__}
    if product is not None:
        attrs["policy"] = replace(template.policy, product=product)
    return type(template.__name__, (template,), attrs)


def google_definition(spec: ProviderSpec) -> Definition:
    generated = generate(spec)
    connection = type(
        generated.connection.__name__,
        (generated.connection,),
        {
            "__module__": __name__,
            "__doc__": "Connect Google with OAuth 2.0; Calendar at first, Gmail and Drive added as products.",
            "auth": replace(generated.connection.auth, products=PRODUCTS),
            "title": "Connect Google",
        },
    )
    operations = (
        *(_bound(op, generated.client, "calendar") for op in CALENDAR_OPERATIONS),
        _bound(MessagesSync, generated.client),
        _bound(FilesSync, generated.client),
    )
    return Definition(
        id=spec.id,
        name=spec.name,
        description=spec.description,
        category="productivity",
        docs_url="https://developers.google.com/workspace",
        mode=spec.mode,
        onboarding=spec.definition_onboarding,  # type: ignore[arg-type]
        operator_config=config_type(generated.config),
        slots=(generated.slot,),
        clients=(generated.client,),
        connections=(connection,),
        operations=(generated.health_check, *operations),
        mappings=(EVENT, MESSAGE, MESSAGE_DELETED, FILE, FILE_REMOVED),
        standard_suite_skips={
            "webhook.verifies": "no push channel (Gmail watch, Drive or Calendar watch) is declared: the syncs poll "
            "Google's history IDs, change log and sync tokens",
            "webhook.refuses_tampered": "no push channel is declared: nothing to tamper with",
        },
    )


definition = google_definition(load_spec(SPEC))
