"""The sandbox's six record kinds and the internal model each becomes: (list path, schema, variant)."""

from __future__ import annotations

from dataclasses import dataclass

from engine import Emits


@dataclass(frozen=True)
class Kind:
    #: The list's path under the API (``/users``) and the ``kind`` a webhook event names.
    name: str
    schema: str
    variant: str


#: In ingest order: accounts and groups before the memberships that reference them.
KINDS: tuple[Kind, ...] = (
    Kind("users", "directory_account", "user"),
    Kind("groups", "directory_group", "group"),
    Kind("memberships", "directory_membership", "membership"),
    Kind("assets", "asset", "asset"),
    Kind("findings", "finding", "finding"),
    Kind("events", "calendar_event", "event"),
)
BY_NAME = {k.name: k for k in KINDS}
EMITS: tuple[Emits, ...] = tuple(Emits(k.schema, k.variant) for k in KINDS)
