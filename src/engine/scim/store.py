"""SCIM resources in the directory tables, one integration at a time.

Writes go through the ingest pipeline (the definition's mappings → ``directory_account``, ``directory_group``,
``directory_membership``, upserted on the SCIM id); deletions, and memberships a replace or PATCH drops, are
``ingest.changes.remove_records`` (deletes that write their ``remove`` changes to the change feed in the same
transaction). Every query is scoped by (tenant, integration), so one integration's token never reaches
another's rows. Functions are synchronous: the router runs them in a worker thread.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlmodel import col, select

from engine.runtime import Runtime
from engine.scim.mappings import group_payloads, user_payloads
from engine.scim.protocol import ScimError
from engine.scim.webhook import GROUP_EMITS, USER_EMITS
from ingest.changes import record_changes, remove_records, table_of
from ingest.models.directory_account import DirectoryAccount
from ingest.models.directory_group import DirectoryGroup
from ingest.models.directory_membership import DirectoryMembership
from ingest.pipeline import IngestContext, IngestPipeline


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def version_of(resource: dict[str, Any]) -> str:
    body = {k: v for k, v in resource.items() if k != "meta"}
    return 'W/"' + hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16] + '"'


@dataclass
class Store:
    runtime: Runtime
    tenant_id: str
    integration_id: str
    definition_id: str = "scim"

    # -- users -----------------------------------------------------------------------------------------------

    def _account_rows(self, user_id: str | None = None) -> list[DirectoryAccount]:
        query = select(DirectoryAccount).where(
            DirectoryAccount.tenant_id == self.tenant_id, DirectoryAccount.integration_id == self.integration_id
        )
        if user_id is not None:
            query = query.where(DirectoryAccount.external_id == user_id)
        with self.runtime.db.session() as session:
            return list(session.exec(query.order_by(col(DirectoryAccount.id))))

    def _groups_of(self, user_ids: list[str] | None) -> dict[str, list[dict[str, Any]]]:
        query = (
            select(DirectoryMembership.account_external_id, DirectoryGroup.external_id, DirectoryGroup.name)
            .join(DirectoryGroup, col(DirectoryGroup.id) == col(DirectoryMembership.group_id))
            .where(
                DirectoryMembership.tenant_id == self.tenant_id,
                DirectoryMembership.integration_id == self.integration_id,
            )
        )
        if user_ids is not None:
            query = query.where(col(DirectoryMembership.account_external_id).in_(user_ids))
        out: dict[str, list[dict[str, Any]]] = {}
        with self.runtime.db.session() as session:
            for account, group, name in session.exec(query.order_by(col(DirectoryMembership.id))):
                out.setdefault(account, []).append({"value": group, "display": name, "type": "direct"})
        return out

    def _user(self, row: DirectoryAccount, groups: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        resource = dict((row.attributes or {}).get("scim") or {})
        if groups.get(row.external_id):
            resource["groups"] = groups[row.external_id]
        return resource

    def users(self) -> list[dict[str, Any]]:
        rows = self._account_rows()
        groups = self._groups_of(None)
        return [self._user(r, groups) for r in rows]

    def user(self, user_id: str) -> dict[str, Any]:
        rows = self._account_rows(user_id)
        if not rows:
            raise ScimError(404, f"no User {user_id}")
        return self._user(rows[0], self._groups_of([user_id]))

    def user_exists(self, user_ids: list[str]) -> set[str]:
        with self.runtime.db.session() as session:
            return set(
                session.exec(
                    select(DirectoryAccount.external_id).where(
                        DirectoryAccount.tenant_id == self.tenant_id,
                        DirectoryAccount.integration_id == self.integration_id,
                        col(DirectoryAccount.external_id).in_(user_ids),
                    )
                )
            )

    def username_taken(self, username: str, except_id: str | None = None) -> bool:
        lowered = username.lower()
        return any((r.username or "").lower() == lowered and r.external_id != except_id for r in self._account_rows())

    def save_user(self, resource: dict[str, Any]) -> None:
        stored = {k: v for k, v in resource.items() if k not in ("groups", "password")}
        self._ingest(USER_EMITS, user_payloads(stored))

    def delete_user(self, user_id: str) -> None:
        self._remove("directory_account", "User", user_id)  # its memberships go with it (references)

    def _remove(self, schema: str, kind: str, external_id: str) -> None:
        with self.runtime.db.engine.begin() as connection:
            changes = remove_records(
                connection, schema, self.tenant_id, self.integration_id, table_of(schema).c.external_id == external_id
            )
            if not any(change.schema == schema for change in changes):
                raise ScimError(404, f"no {kind} {external_id}")  # rolls back: nothing else was removed
            record_changes(connection, self.tenant_id, changes)

    # -- groups ----------------------------------------------------------------------------------------------

    def _group_rows(self, group_id: str | None = None) -> list[DirectoryGroup]:
        query = select(DirectoryGroup).where(
            DirectoryGroup.tenant_id == self.tenant_id, DirectoryGroup.integration_id == self.integration_id
        )
        if group_id is not None:
            query = query.where(DirectoryGroup.external_id == group_id)
        with self.runtime.db.session() as session:
            return list(session.exec(query.order_by(col(DirectoryGroup.id))))

    def _members_of(self, group_ids: list[str] | None) -> dict[str, list[dict[str, Any]]]:
        query = (
            select(
                DirectoryMembership.group_external_id,
                DirectoryAccount.external_id,
                DirectoryAccount.display_name,
                DirectoryAccount.username,
            )
            .join(DirectoryAccount, col(DirectoryAccount.id) == col(DirectoryMembership.account_id))
            .where(
                DirectoryMembership.tenant_id == self.tenant_id,
                DirectoryMembership.integration_id == self.integration_id,
            )
        )
        if group_ids is not None:
            query = query.where(col(DirectoryMembership.group_external_id).in_(group_ids))
        out: dict[str, list[dict[str, Any]]] = {}
        with self.runtime.db.session() as session:
            for group, account, display, username in session.exec(query.order_by(col(DirectoryMembership.id))):
                out.setdefault(group, []).append({"value": account, "display": display or username, "type": "User"})
        return out

    def _group(self, row: DirectoryGroup, members: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        resource = dict((row.attributes or {}).get("scim") or {})
        given = {m.get("value"): m for m in resource.pop("members", None) or [] if isinstance(m, dict)}
        if members.get(row.external_id):
            resource["members"] = [
                {**m, "display": given[m["value"]]["display"]} if given.get(m["value"], {}).get("display") else m
                for m in members[row.external_id]
            ]
        return resource

    def groups(self) -> list[dict[str, Any]]:
        members = self._members_of(None)
        return [self._group(r, members) for r in self._group_rows()]

    def group(self, group_id: str) -> dict[str, Any]:
        rows = self._group_rows(group_id)
        if not rows:
            raise ScimError(404, f"no Group {group_id}")
        return self._group(rows[0], self._members_of([group_id]))

    def save_group(self, resource: dict[str, Any]) -> None:
        """Upsert the group and its members, then drop memberships the resource no longer lists."""
        members = sorted(
            {str(m["value"]) for m in resource.get("members") or [] if isinstance(m, dict) and m.get("value")}
        )
        unknown = sorted(set(members) - self.user_exists(members)) if members else []
        if unknown:
            raise ScimError(400, f"members {', '.join(unknown[:5])} are not Users of this endpoint", "invalidValue")
        self._ingest(GROUP_EMITS, group_payloads(resource, members))
        memberships = table_of("directory_membership")
        with self.runtime.db.engine.begin() as connection:
            changes = remove_records(
                connection,
                "directory_membership",
                self.tenant_id,
                self.integration_id,
                memberships.c.group_external_id == resource["id"],
                memberships.c.account_external_id.not_in(members),
            )
            record_changes(connection, self.tenant_id, changes)

    def delete_group(self, group_id: str) -> None:
        self._remove("directory_group", "Group", group_id)  # its memberships go with it (references)

    # -- ingest ----------------------------------------------------------------------------------------------

    def _ingest(self, emits: Any, payloads: list[Any]) -> None:
        ctx = IngestContext(
            tenant_id=self.tenant_id,
            integration_id=self.integration_id,
            definition_id=self.definition_id,
            emits=emits,
            source="webhook",
            origin="scim",
        )
        result = IngestPipeline(self.runtime.registry, self.runtime.db).process(ctx, payloads)
        if result.rejected:
            reject = result.rejects[0]
            raise ScimError(400, f"the resource was refused: {reject.reason}", "invalidValue")
