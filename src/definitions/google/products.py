"""The products one Google grant serves, and their scopes (all read-only; under ``https://www.googleapis.com/auth/``).

* ``calendar``: ``calendar.readonly``, asked for at connect (``oauth.toml``'s ``scopes``).
* ``gmail``: ``gmail.metadata``: message IDs, labels and headers, never bodies. Google itself refuses
  ``format=full``/``raw`` and the search parameter ``q`` to this scope, so a read-only Gmail grant cannot read a
  body even by mistake. A "full" tier (``gmail.readonly``) is not offered yet (README: missing).
* ``drive``: ``drive.metadata.readonly``: file metadata and the change log, never contents.
"""

from __future__ import annotations

from engine import Product

AUTH = "https://www.googleapis.com/auth/"
CALENDAR_READ = f"{AUTH}calendar.readonly"
CALENDAR_WRITE = f"{AUTH}calendar.events"
GMAIL_METADATA = f"{AUTH}gmail.metadata"
DRIVE_METADATA = f"{AUTH}drive.metadata.readonly"

CALENDAR = Product("calendar", "Google Calendar", (CALENDAR_READ,))
GMAIL = Product("gmail", "Gmail", (GMAIL_METADATA,))
DRIVE = Product("drive", "Google Drive", (DRIVE_METADATA,))
PRODUCTS = (CALENDAR, GMAIL, DRIVE)
