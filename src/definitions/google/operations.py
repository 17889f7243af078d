"""The Gmail and Drive syncs (templates: ``definition.py`` binds them to the generated Google client).

Both keep Google's own cursor in the operation's checkpoint, which the engine saves only when the run succeeds: a
run that fails part way (a 429 on page 3, a worker restart) leaves the previous checkpoint, and the retry replays
from it. Replaying is safe because every record is an upsert on the provider's ID.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from definitions.google.config import DRIVE_API, GMAIL_API, api_base
from definitions.google.drive import ChangeTokenInvalid, Drive
from definitions.google.gmail import Gmail, HistoryExpired, MessageGone
from engine import Emits, Operation, OperationContext, Payload, Policy, ProviderError

#: Metadata reads in flight at once during a Gmail sync (Gmail's per-user quota is 250 units/s; a get costs 5).
GET_CONCURRENCY = 10


def _checkpoint(ctx: OperationContext, key: str) -> str | None:
    """The provider cursor the last successful run left under ``key``, or ``None`` (a full sync is due)."""
    value = ctx.cursor.get(key) if isinstance(ctx.cursor, dict) else None
    return value if isinstance(value, str) and value else None


async def partial_or_full(
    partial: AsyncIterator[Payload] | None,
    full: Callable[[], AsyncIterator[Payload]],
    expired: type[ProviderError],
) -> AsyncIterator[Payload]:
    """The partial sync when there is a checkpoint; the full sync when there is none or the provider says the
    checkpoint is gone (``expired``) before anything was read. Later, ``expired`` is a provider fault and raised."""
    if partial is not None:
        yielded = False
        try:
            async for payload in partial:
                yielded = True
                yield payload
            return
        except expired:
            if yielded:
                raise
    async for payload in full():
        yield payload


class MessagesSyncConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: A full sync reads this many of the newest messages (Gmail's sync guide: "as many as necessary").
    max_messages: int = Field(default=2000, ge=1, le=100_000)
    include_spam_trash: bool = False


class MessagesSync(Operation):
    """Sync Gmail message metadata into ``message`` (``email``), incrementally on Gmail's ``historyId``.

    The checkpoint is ``{"history_id"}``. The first run (or one whose history ID Gmail no longer has: 404) is a full
    sync: the profile's ``historyId`` first, then the newest ``max_messages`` IDs, each read with
    ``format=metadata``. Later runs read ``history.list`` from the checkpoint: added and relabelled messages are read
    again, deleted ones become ``deleted`` tombstones, and the last page's ``historyId`` is the next checkpoint.
    """

    config = MessagesSyncConfig
    policy = Policy.queued(reconcile=True, product="gmail")
    emits = (Emits("message", "email"), Emits("message", "deleted"))

    async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        assert isinstance(ctx.config, MessagesSyncConfig)
        gmail = Gmail(ctx.client, api_base(ctx.operator_config, GMAIL_API))
        start = _checkpoint(ctx, "history_id")
        partial = self._partial(gmail, start, ctx) if start else None
        config = ctx.config
        async for payload in partial_or_full(partial, lambda: self._full(gmail, ctx, config), HistoryExpired):
            yield payload

    async def _full(self, gmail: Gmail, ctx: OperationContext, config: MessagesSyncConfig) -> AsyncIterator[Payload]:
        # The history ID is taken before listing: what changes during the listing is replayed by the next run.
        history_id = (await gmail.profile()).get("historyId")
        if not isinstance(history_id, str | int) or not str(history_id):
            raise _no_history_id()
        remaining = config.max_messages
        async for page in gmail.message_ids(include_spam_trash=config.include_spam_trash):
            ids = [m["id"] for m in page.items if isinstance(m, dict) and isinstance(m.get("id"), str)]
            ids = ids[:remaining]
            async for payload in self._read(gmail, ids):
                yield payload
            remaining -= len(ids)
            if remaining <= 0:
                break
        ctx.next_cursor = {"history_id": str(history_id)}

    async def _partial(self, gmail: Gmail, start: str, ctx: OperationContext) -> AsyncIterator[Payload]:
        latest: str | None = None
        async for page in gmail.history(start):
            changed: dict[str, dict[str, Any]] = {}  # message ID → the last change of this page (order kept)
            for record in page.items:
                for kind, entries in _changes(record):
                    for message in entries:
                        changed.pop(message["id"], None)
                        changed[message["id"]] = {"kind": kind, "message": message}
            reread = [i for i, c in changed.items() if c["kind"] == "changed"]
            for change in changed.values():
                if change["kind"] == "deleted":
                    yield Payload("message", change["message"], variant="deleted")
            async for payload in self._read(gmail, reread):
                yield payload
            body = page.raw if isinstance(page.raw, dict) else {}
            latest = str(body["historyId"]) if body.get("historyId") else latest
        if latest is None:
            raise _no_history_id()
        ctx.next_cursor = {"history_id": latest}

    async def _read(self, gmail: Gmail, ids: list[str]) -> AsyncIterator[Payload]:
        """Each message's metadata, ``GET_CONCURRENCY`` at a time, in the order given; one gone since it was
        listed becomes a tombstone (it may be a row of an earlier sync)."""
        for at in range(0, len(ids), GET_CONCURRENCY):
            chunk = ids[at : at + GET_CONCURRENCY]
            answers = await asyncio.gather(*(_metadata(gmail, i) for i in chunk))
            for message_id, message in zip(chunk, answers, strict=True):
                if message is None:
                    yield Payload("message", {"id": message_id}, variant="deleted")
                else:
                    yield Payload("message", message, variant="email")


async def _metadata(gmail: Gmail, message_id: str) -> dict[str, Any] | None:
    try:
        return await gmail.message(message_id)
    except MessageGone:
        return None


def _changes(record: Any) -> list[tuple[str, list[dict[str, Any]]]]:
    """A history record's messages by change kind: ``deleted`` or ``changed`` (added, labels added or removed)."""
    if not isinstance(record, dict):
        return []
    out: list[tuple[str, list[dict[str, Any]]]] = []
    for key, kind in (
        ("messagesAdded", "changed"),
        ("labelsAdded", "changed"),
        ("labelsRemoved", "changed"),
        ("messagesDeleted", "deleted"),
    ):
        entries = [e.get("message") for e in record.get(key) or [] if isinstance(e, dict)]
        out.append((kind, [m for m in entries if isinstance(m, dict) and isinstance(m.get("id"), str)]))
    return out


def _no_history_id() -> ProviderError:
    return ProviderError("Gmail answered no historyId: the sync cannot be made incremental")


class FilesSync(Operation):
    """Sync Google Drive file metadata into ``file``, incrementally on Drive's change log.

    The checkpoint is ``{"page_token"}``. The first run takes ``changes.getStartPageToken`` and then lists every
    file (``files.list``); later runs read ``changes.list`` from the checkpoint to its ``newStartPageToken``. A
    changed file is upserted (a trashed one with ``trashed``); a ``removed`` change (deleted for good, or no longer
    shared) becomes a ``removed`` tombstone. Changes of a shared drive itself (``changeType: drive``, no ``fileId``)
    describe no file and are skipped.
    """

    policy = Policy.queued(reconcile=True, product="drive")
    emits = (Emits("file", "file"), Emits("file", "removed"))

    async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        drive = Drive(ctx.client, api_base(ctx.operator_config, DRIVE_API))
        token = _checkpoint(ctx, "page_token")
        partial = self._changes(drive, token, ctx) if token else None
        async for payload in partial_or_full(partial, lambda: self._listing(drive, ctx), ChangeTokenInvalid):
            yield payload

    async def _listing(self, drive: Drive, ctx: OperationContext) -> AsyncIterator[Payload]:
        start = await drive.start_page_token()  # first, so changes during the listing are replayed next time
        async for page in drive.files():
            for item in page.items:
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    yield Payload("file", item, variant="file")
        ctx.next_cursor = {"page_token": start}

    async def _changes(self, drive: Drive, token: str, ctx: OperationContext) -> AsyncIterator[Payload]:
        new_start: str | None = None
        async for page in drive.changes(token):
            for change in page.items:
                if not isinstance(change, dict) or not isinstance(change.get("fileId"), str):
                    continue  # a shared drive's own change: no file to record
                if change.get("removed"):
                    yield Payload("file", change, variant="removed")
                elif isinstance(change.get("file"), dict):
                    yield Payload("file", change["file"], variant="file")
            body = page.raw if isinstance(page.raw, dict) else {}
            new_start = body.get("newStartPageToken") or new_start
        if not new_start:
            raise ProviderError("Google Drive's change list ended without a newStartPageToken (GET /changes)")
        ctx.next_cursor = {"page_token": new_start}
