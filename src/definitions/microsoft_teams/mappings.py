"""Mapping: a Teams channel message (Graph v1.0 ``chatMessage``) → ``message`` (``kind`` ``chat``).

Metadata only: the sender (``from.user``, or ``from.application`` for a bot or connector; ``from`` is null on
system messages), when it was posted and last changed, its subject, the team and channel it is in
(``channelIdentity``) and its link (``webUrl``). ``body`` is never read into the row, as the ``message`` model
stores no bodies; ``summary`` (Graph's own short preview, mostly null) is the snippet.

A chatMessage ID is unique within its channel only (it is the post's creation time in milliseconds), so the
external ID is ``<channel id>/<message id>`` (the channel from ``channelIdentity``, else the channel the sync read it
from, its ``resource``); the bare ID stays in ``attributes.message_id``.

A deleted message comes back from the delta query with ``deletedDateTime`` set (and its body emptied); the sync
passes it on as a removal (``REMOVE``), so its row goes. Mapped without removing (a host's own use), it says
``attributes.deleted`` with the subject and snippet cleared.

Checked against Microsoft's published v1.0 examples (``tests/fixtures/microsoft_teams/published/``, source named
in each file); every optional property is guarded for absence and null alike (compared by type, which both CEL back
ends evaluate the same way).
"""

from __future__ import annotations

from engine import Mapping
from engine.kit.celpaths import optional, present

DELETED = present("deletedDateTime")
USER = present("from.user")
APP = present("from.application")

CHANNEL_MESSAGE = Mapping(
    schema="message",
    variant="channel_message",
    map=f"""
    {{
      "external_id": ({present("channelIdentity.channelId")} ? payload.channelIdentity.channelId : resource)
          + "/" + payload.id,
      "kind": "chat",
      "thread_id": {present("replyToId")} ? payload.replyToId : payload.id,
      "sender": {present("from")} && {USER} ? {optional("from.user.id")}
          : ({present("from")} && {APP} ? {optional("from.application.id")} : null),
      "sender_name": {present("from")} && {USER} ? {optional("from.user.displayName")}
          : ({present("from")} && {APP} ? {optional("from.application.displayName")} : null),
      "recipients": null,
      "subject": {DELETED} || !{present("subject")} || payload.subject == "" ? null : payload.subject,
      "sent_at": {optional("createdDateTime")},
      "labels": null,
      "snippet": {DELETED} ? null : {optional("summary")},
      "channel_id": {present("channelIdentity.channelId")} ? payload.channelIdentity.channelId : resource,
      "team_id": {optional("channelIdentity.teamId")},
      "url": {optional("webUrl")},
      "attributes": {{
        "message_id": payload.id,
        "message_type": {optional("messageType")},
        "sender_type": {present("from")} && {USER} ? "user" : ({present("from")} && {APP} ? "application" : null),
        "importance": {optional("importance")},
        "last_modified_at": {optional("lastModifiedDateTime")},
        "last_edited_at": {optional("lastEditedDateTime")},
        "deleted_at": {optional("deletedDateTime")},
        "deleted": {DELETED},
        "event": {present("eventDetail")} && has(payload.eventDetail["@odata.type"])
            ? payload.eventDetail["@odata.type"] : null
      }}
    }}
    """,
)

MAPPINGS = (CHANNEL_MESSAGE,)
