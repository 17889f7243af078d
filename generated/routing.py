# DO NOT EDIT: written by scripts/codegen.py from the ingest annotations in src/ingest/models/.

"""Ingest routing: schema name → the function that persists a batch of it."""

from __future__ import annotations

from collections.abc import Callable

from ingest.persistence import asset as _asset
from ingest.persistence import calendar_event as _calendar_event
from ingest.persistence import contact as _contact
from ingest.persistence import directory_account as _directory_account
from ingest.persistence import directory_group as _directory_group
from ingest.persistence import directory_membership as _directory_membership
from ingest.persistence import file as _file
from ingest.persistence import finding as _finding
from ingest.persistence import message as _message
from ingest.persistence import vulnerability as _vulnerability
from ingest.persistence.stock import PersistBatch, PersistRejection

Persist = Callable[[PersistBatch], list[PersistRejection]]

ROUTES: dict[str, Persist] = {
    "asset": _asset.persist,
    "directory_account": _directory_account.persist,
    "directory_group": _directory_group.persist,
    "directory_membership": _directory_membership.persist,
    "finding": _finding.persist,
    "vulnerability": _vulnerability.persist,
    "calendar_event": _calendar_event.persist,
    "contact": _contact.persist,
    "message": _message.persist,
    "file": _file.persist,
}
