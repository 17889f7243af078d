"""Internal models: the typed tables provider data lands in.

Each module holds one model. Add a model here and to ``MODELS`` so the ingest catalog sees it (then run
``scripts/codegen.py`` and add a migration).
"""

from ingest.models.asset import Asset
from ingest.models.calendar_event import CalendarEvent
from ingest.models.contact import Contact
from ingest.models.directory_account import DirectoryAccount
from ingest.models.directory_group import DirectoryGroup
from ingest.models.directory_membership import DirectoryMembership
from ingest.models.file import File
from ingest.models.finding import Finding
from ingest.models.message import Message
from ingest.models.vulnerability import Vulnerability

MODELS = (
    Asset,
    DirectoryAccount,
    DirectoryGroup,
    DirectoryMembership,
    Finding,
    Vulnerability,
    CalendarEvent,
    Contact,
    Message,
    File,
)

__all__ = [
    "MODELS",
    "Asset",
    "CalendarEvent",
    "Contact",
    "DirectoryAccount",
    "DirectoryGroup",
    "DirectoryMembership",
    "File",
    "Finding",
    "Message",
    "Vulnerability",
]
