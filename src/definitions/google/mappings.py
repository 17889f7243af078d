"""Mappings of the Gmail v1 and Drive v3 resources (as the sync requests them) into ``message`` and ``file``.

Every optional property is guarded: Google omits absent fields, and a ``fields``/``format=metadata`` answer carries
only what was asked for; a property that is transformed (``int()``, ``map()``, a comparison) is guarded against an
explicit ``null`` too (``_set``), so a null never turns a record into a map error.

* ``(message, email)``: a Gmail ``Message`` in ``format=metadata``. Headers are matched case-insensitively (a
  message's own spelling, ``CC`` or ``cc``, is what Gmail returns); ``sent_at`` is ``internalDate`` (epoch
  milliseconds as a string, Gmail's own ordering time), not the sender-controlled ``Date`` header, which is kept in
  ``attributes``. Gmail's API has no web link for a message, so ``url`` stays empty.
* ``(message, deleted)``: a Gmail ``messagesDeleted`` entry (``{id, threadId}``): the row is kept as a tombstone,
  marked ``attributes.deleted``.
* ``(file, file)``: a Drive ``File``; ``size`` is an int64 string, absent for folders and Google Docs.
* ``(file, removed)``: a Drive ``Change`` with ``removed: true`` (no ``file``): a tombstone, ``trashed`` and
  ``attributes.removed``.
"""

from __future__ import annotations

from engine import Mapping


def _set(path: str) -> str:
    """``path`` is present and not ``null`` (CEL's ``has()`` is true for a key holding null)."""
    return f"(has({path}) && type({path}) != null_type)"


def _header(name: str) -> str:
    """The values of one header of a ``format=metadata`` message, as a CEL list (``[]`` when absent)."""
    return (
        f"({_set('payload.payload')} && {_set('payload.payload.headers')}"
        f' ? payload.payload.headers.filter(h, {_set("h.name")} && h.name.matches("(?i)^{name}$"))'
        f'.map(h, {_set("h.value")} ? h.value : "") : [])'
    )


def _first(name: str) -> str:
    return f"(size({_header(name)}) > 0 ? {_header(name)}[0] : null)"


_RECIPIENTS = f"{_header('to')} + {_header('cc')}"

MESSAGE = Mapping(
    schema="message",
    variant="email",
    map=f"""
    {{
      "external_id": payload.id,
      "kind": "email",
      "thread_id": has(payload.threadId) ? payload.threadId : null,
      "sender": {_first("from")},
      "recipients": size({_RECIPIENTS}) > 0 ? {_RECIPIENTS} : null,
      "subject": {_first("subject")},
      "sent_at": {_set("payload.internalDate")} ? int(payload.internalDate) : null,
      "labels": has(payload.labelIds) ? payload.labelIds : null,
      "snippet": has(payload.snippet) ? payload.snippet : null,
      "attributes": {{
        "history_id": has(payload.historyId) ? payload.historyId : null,
        "size_estimate": has(payload.sizeEstimate) ? payload.sizeEstimate : null,
        "date_header": {_first("date")}
      }}
    }}
    """,
)

MESSAGE_DELETED = Mapping(
    schema="message",
    variant="deleted",
    map="""
    {
      "external_id": payload.id,
      "kind": "email",
      "thread_id": has(payload.threadId) ? payload.threadId : null,
      "attributes": {"deleted": true}
    }
    """,
)

_FOLDER = "application/vnd.google-apps.folder"

FILE = Mapping(
    schema="file",
    variant="file",
    map=f"""
    {{
      "external_id": payload.id,
      "name": has(payload.name) ? payload.name : null,
      "mime_type": has(payload.mimeType) ? payload.mimeType : null,
      "kind": !{_set("payload.mimeType")} ? null
        : payload.mimeType == "{_FOLDER}" ? "folder"
        : payload.mimeType.startsWith("application/vnd.google-apps.") ? "document" : "file",
      "owners": {_set("payload.owners")}
        ? payload.owners.map(o,
            {_set("o.emailAddress")} ? o.emailAddress : {_set("o.displayName")} ? o.displayName : "")
        : null,
      "size_bytes": {_set("payload.size")} ? int(payload.size) : null,
      "source_created_at": has(payload.createdTime) ? payload.createdTime : null,
      "source_modified_at": has(payload.modifiedTime) ? payload.modifiedTime : null,
      "url": has(payload.webViewLink) ? payload.webViewLink : null,
      "trashed": has(payload.trashed) ? payload.trashed : null,
      "parent_id": {_set("payload.parents")} && size(payload.parents) > 0 ? payload.parents[0] : null,
      "attributes": {{"drive_id": has(payload.driveId) ? payload.driveId : null}}
    }}
    """,
)

FILE_REMOVED = Mapping(
    schema="file",
    variant="removed",
    map="""
    {
      "external_id": payload.fileId,
      "trashed": true,
      "attributes": {"removed": true, "removed_at": has(payload.time) ? payload.time : null}
    }
    """,
)
