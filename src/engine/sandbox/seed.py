"""The seeded accounts and their records: the same ids and values on every fresh database.

Each account's records come from a random generator seeded with the account's name (``random.Random`` of a
string is stable across runs and platforms), and every timestamp is an offset from a fixed epoch, so a test or a
demo can name a record (``acme``'s first user) and find it again. Only the controls change records, stamping
them with the time of the change.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

#: Every seeded timestamp is this plus an offset.
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
KINDS = ("users", "groups", "memberships", "assets", "findings", "events")
#: The id prefix of each kind's records.
ID_PREFIX = {
    "users": "usr",
    "groups": "grp",
    "memberships": "mem",
    "assets": "ast",
    "findings": "fnd",
    "events": "evt",
}


@dataclass(frozen=True)
class SeedAccount:
    id: str
    name: str
    domain: str
    #: Records per kind (memberships follow from users and groups).
    users: int
    groups: int
    assets: int
    findings: int
    events: int

    @property
    def api_key(self) -> str:
        """The account's fixed API key: sandbox only, shown on its page and in the docs."""
        return f"sbx_key_{self.id}"


ACCOUNTS = (
    SeedAccount("acme", "Acme Corp", "acme.example", users=12, groups=4, assets=6, findings=8, events=10),
    SeedAccount("globex", "Globex Corporation", "globex.example", users=9, groups=3, assets=5, findings=6, events=7),
    SeedAccount("initech", "Initech", "initech.example", users=6, groups=2, assets=3, findings=4, events=5),
)
BY_ID = {account.id: account for account in ACCOUNTS}

_FIRST = (
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "Ken",
    "Margaret",
    "Dennis",
    "Radia",
    "John",
    "Hedy",
    "Linus",
    "Shafi",
    "Tim",
)
_LAST = (
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Thompson",
    "Hamilton",
    "Ritchie",
    "Perlman",
    "McCarthy",
    "Lamarr",
    "Torvalds",
    "Goldwasser",
    "Berners-Lee",
)
_TITLES = ("Engineer", "Senior Engineer", "Designer", "Product Manager", "Analyst", "Director", "Support Lead")
_DEPARTMENTS = ("Engineering", "Design", "Product", "Finance", "Support", "Security")
_GROUPS = ("Engineering", "Security", "Finance", "Support", "Design", "Leadership")
_OS = ("Ubuntu 24.04", "Windows Server 2022", "macOS 15", "Debian 12", "RHEL 9")
_HOSTS = ("web", "db", "build", "mail", "vpn", "files", "edge")
_FINDINGS = (
    "Outdated OpenSSL",
    "TLS 1.0 enabled",
    "Default credentials",
    "Unpatched kernel",
    "Open SMB share",
    "Weak SSH ciphers",
    "Expired certificate",
    "Directory listing enabled",
)
_SEVERITIES = ("low", "medium", "high", "critical")
_EVENTS = ("Weekly sync", "Planning", "Incident review", "1:1", "Design review", "All hands", "Security training")


def record_id(account: str, kind: str, index: int) -> str:
    digest = hashlib.sha256(f"{account}/{kind}/{index}".encode()).hexdigest()
    return f"{ID_PREFIX[kind]}_{digest[:12]}"


def rfc3339(moment: datetime) -> str:
    """RFC 3339 in UTC, with the microseconds when there are any: exactly the stored instant, so a client that
    sends back the newest ``updated_at`` it saw as ``updated_since`` gets nothing it already has."""
    utc = moment.astimezone(UTC)
    fraction = f".{utc.microsecond:06d}" if utc.microsecond else ""
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def seed_records(account: SeedAccount) -> list[tuple[str, str, dict[str, Any], datetime]]:
    """(kind, id, fields, updated_at) of every seeded record of ``account``, in a stable order."""
    rng = random.Random(f"tether-sandbox/{account.id}")
    out: list[tuple[str, str, dict[str, Any], datetime]] = []

    def add(kind: str, index: int, fields: dict[str, Any]) -> None:
        stamp = EPOCH + timedelta(minutes=KINDS.index(kind) * 1000 + index)
        out.append((kind, record_id(account.id, kind, index), fields, stamp))

    emails = []
    for i in range(account.users):
        first, last = _FIRST[i % len(_FIRST)], _LAST[(i * 7 + len(account.id)) % len(_LAST)]
        email = f"{first.lower()}.{last.lower()}@{account.domain}"
        emails.append(email)
        add(
            "users",
            i,
            {
                "email": email,
                "name": f"{first} {last}",
                "title": rng.choice(_TITLES),
                "department": rng.choice(_DEPARTMENTS),
                "active": i % 7 != 6,
                "created_at": rfc3339(EPOCH - timedelta(days=400 - i * 9)),
            },
        )
    for g in range(account.groups):
        name = _GROUPS[g % len(_GROUPS)]
        add("groups", g, {"name": name, "description": f"{name} at {account.name}"})
    for i in range(account.users):
        group = i % account.groups
        add(
            "memberships",
            i,
            {
                "group_id": record_id(account.id, "groups", group),
                "user_id": record_id(account.id, "users", i),
                "role": "owner" if i < account.groups else "member",
            },
        )
    for a in range(account.assets):
        add(
            "assets",
            a,
            {
                "hostname": f"{_HOSTS[a % len(_HOSTS)]}-{a + 1:02d}.{account.domain}",
                "ip": f"10.{len(account.id)}.{a // 250}.{a % 250 + 1}",
                "os": rng.choice(_OS),
                "owner_email": emails[a % len(emails)],
            },
        )
    for f in range(account.findings):
        add(
            "findings",
            f,
            {
                "asset_id": record_id(account.id, "assets", f % account.assets),
                "title": _FINDINGS[f % len(_FINDINGS)],
                "severity": rng.choice(_SEVERITIES),
                "status": "resolved" if f % 3 == 2 else "open",
                "cve": f"CVE-2025-{rng.randint(10000, 49999)}",
            },
        )
    for e in range(account.events):
        start = EPOCH + timedelta(days=e, hours=9 + e % 6)
        attendees = sorted({emails[(e + k) % len(emails)] for k in range(1, 4)})
        add(
            "events",
            e,
            {
                "title": _EVENTS[e % len(_EVENTS)],
                "start": rfc3339(start),
                "end": rfc3339(start + timedelta(minutes=30 * (1 + e % 3))),
                "organizer_email": emails[e % len(emails)],
                "attendees": attendees,
            },
        )
    return out
